"""EnrichConfig is frozen and validated; paths given as text become Paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from iotscope.enrich import EnrichConfig
from iotscope.enrich.config import default_cache_dir


def test_paths_and_validation(monkeypatch, tmp_path):
    config = EnrichConfig(city="/x/GeoLite2-City.mmdb")
    assert config.city == Path("/x/GeoLite2-City.mmdb") and config.asn is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.city = None
    with pytest.raises(ValueError):
        EnrichConfig(licence=" ")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "iotscope" / "enrich"
