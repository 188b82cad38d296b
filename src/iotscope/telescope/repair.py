"""Re-ingesting what ``iotscope store check --repair`` found damaged.

The store only knows which captures are damaged; ingesting again belongs to the telescope stage.
A capture is re-ingested only when its file is still at the recorded path and still starts with the
recorded content (the same XXH3-128 over its recorded size): anything else might be another file
under the same name, so it is listed for the operator instead.

A damaged hour (a compacted file, see ``iotscope.store.check.DamagedHour``) is rebuilt whole: every
capture that filled it is ingested again into a scratch store, which must give exactly the rows the
catalog recorded for it, and that hour's rows replace all of the hour's live files in one catalog
transaction (as compaction does). If any of those captures is gone (a sensor deletes its spool
files once stored), the hour is left as it is and the user is told which file to put back.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from iotscope.capture import CaptureError
from iotscope.store.check import DamagedHour, captures_in_hour
from iotscope.store.compaction import partition_label, replace_hour_files
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


def rebuild_hours(damaged: Iterable[DamagedHour], store: PacketStore) -> list[str]:
    """Rebuild each damaged hour from the captures that filled it; one line per hour, for the user."""
    store.lock_for_writing()
    return [_rebuild_hour(store, d.hour) for d in damaged]


def _rebuild_hour(store: PacketStore, hour: str) -> str:
    # every ingest of each path: a re-ingest reads the file whole, grown parts included
    by_source = {c.source: store.state.ingested_from(c.source) for c in captures_in_hour(store, hour)}
    live = [f for f in store.state.live_files() if partition_label(f) == hour]
    gone = [s for s, ingests in sorted(by_source.items()) if not _exactly_there(Path(s), max(ingests, key=_size))]
    if gone or not by_source:
        return (f"hour {hour} not repaired: its rows came from {len(by_source)} capture(s), of which "
                f"{len(gone)} are no longer at their path with the same content (first: {gone[0] if gone else '-'}); "
                "put those files back (a sensor deletes its spool files once stored: a backup) and run --repair again")
    scratch = store.root / ".staging" / f"repair-{uuid.uuid4().hex}"
    try:
        with PacketStore(scratch) as rebuilt:
            for source, ingests in sorted(by_source.items()):
                report = ingest_file(Path(source), rebuilt)
                if report.packets != sum(c.packets for c in ingests):
                    return (f"hour {hour} not repaired: {source} gives {report.packets:,} rows now, the store "
                            f"recorded {sum(c.packets for c in ingests):,}; it is not the capture that was stored")
            files = [scratch / f for f in rebuilt.state.live_files() if partition_label(f) == hour]
        if not files:
            return f"hour {hour} not repaired: its captures hold no rows of that hour any more"
        replace_hour_files(store, hour, files, live)
    except CaptureError as exc:
        return f"hour {hour} not repaired: re-ingest failed ({exc})"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return f"rebuilt hour {hour} from {len(by_source)} capture(s); {len(live)} damaged or replaced file(s) retired"


def _size(capture: IngestedFile) -> int:
    return capture.size


def _exactly_there(path: Path, capture: IngestedFile) -> bool:
    """The file at ``path`` is the capture as last ingested: same size, same content hash."""
    try:
        return path.is_file() and path.stat().st_size == capture.size and _still_there(path, capture)
    except OSError:
        return False
