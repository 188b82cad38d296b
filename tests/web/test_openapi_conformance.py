"""Schemathesis: requests generated from the OpenAPI document never get a 500 and get what it documents.

Driven through Hypothesis directly (schemathesis' own pytest plugin does not load with this pytest).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotscope.web.app import create_app
from iotscope.web.store_reader import StoreReader

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import positive_data_acceptance


@pytest.fixture(scope="module")
def operations(outbreak_store: Path) -> list:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(StoreReader(outbreak_store)))
    found = [result.ok() for result in schema.get_all_operations()]
    # /api/live is an endless event stream: tested in test_routes_live
    return [op for op in found if op.path != "/api/live"]


def test_the_document_lists_every_endpoint(operations: list) -> None:
    assert {op.path for op in operations} == {"/api/summary", "/api/series", "/api/top/{by}", "/api/map",
                                              "/api/ip/{address}", "/api/events", "/api/attacks",
                                              "/api/alerts", "/api/categories"}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_generated_request_is_answered_as_documented(operations: list, data: st.DataObject) -> None:
    operation = data.draw(st.sampled_from(operations))
    case = data.draw(operation.as_strategy())
    response = case.call()
    assert response.status_code < 500, (case.path, case.query, case.path_parameters, response.text)
    # Some rules span parameters or need the data (``from`` before ``to``, at most 20,000 buckets,
    # an address that parses), so a request valid by the document alone may rightly get a 422;
    # every other check (status codes, bodies, headers, content types) applies.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
