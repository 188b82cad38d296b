"""The JSON bodies of error responses, declared once so OpenAPI documents what the API sends.

FastAPI would otherwise document its own ``{"detail": [...]}`` validation body, which this API
never sends: every 4xx/5xx here is one line in ``error`` (plus ``parameter`` for a 422).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Any error: one line for a person."""

    error: str


class ParameterErrorBody(ErrorBody):
    """A bad request parameter (422): ``parameter`` names it, as spelled in the URL."""

    parameter: str


#: For every API router: the error responses any endpoint may give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ParameterErrorBody, "description": "A parameter is invalid; `parameter` names it."},
    503: {"model": ErrorBody, "description": "The store could not be read."},
}

#: For endpoints scoped to the caller: with ``--orgs``, a missing (address listings) or wrong token.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "With --orgs: no token where addresses are listed, or a wrong token."},
}
