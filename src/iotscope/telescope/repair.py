"""Re-ingesting the captures that ``iotscope store check --repair`` dropped from the catalog.

The store only knows which captures are damaged; ingesting again belongs to the telescope stage.
A capture is re-ingested only when its file is still at the recorded path and still starts with the
recorded content (the same XXH3-128 over its recorded size): anything else might be another file
under the same name, so it is listed for the operator instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from iotscope.capture import CaptureError
from iotscope.store.packets import PacketStore
from iotscope.store.state import IngestedFile
from iotscope.telescope.ingest import ingest_file, prefix_hashes


def reingest_dropped(dropped: Iterable[IngestedFile], store: PacketStore) -> list[str]:
    """Ingest again each dropped capture's file where it is still intact; one line per capture, for the user."""
    latest: dict[str, IngestedFile] = {}
    for capture in dropped:  # one re-ingest per path, checked against the largest dropped ingest of it
        if capture.source not in latest or capture.size > latest[capture.source].size:
            latest[capture.source] = capture
    outcome = []
    for source, capture in sorted(latest.items()):
        path = Path(source)
        if not _still_there(path, capture):
            outcome.append(f"dropped {source}: no longer there with the same content; ingest it again to restore it")
            continue
        try:
            report = ingest_file(path, store)
        except CaptureError as exc:
            outcome.append(f"dropped {source}: re-ingest failed ({exc})")
            continue
        outcome.append(f"re-ingested {source}: {report.packets:,} rows")
    return outcome


def _still_there(path: Path, capture: IngestedFile) -> bool:
    try:
        if not path.is_file() or path.stat().st_size < capture.size:
            return False
        return prefix_hashes(path, capture.size, [])[0] == capture.content_hash
    except (OSError, CaptureError):
        return False
