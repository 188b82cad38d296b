"""The pass interface: what every analysis over the packet store looks like (corsaro3's model).

A pass reads some columns of one hour of ``packets`` (a *partition*) plus the state it carried out
of the previous hour, and returns the dataset rows it can finish in this hour and the state to
carry into the next. Nothing else: no file, no catalog, no loop over hours. The runner
(:mod:`iotscope.telescope.passes.runner`) owns those, which is what lets the same pass run

* sequentially, hour after hour (``iotscope analyze``), and
* partition-parallel (later, on Dask distributed): split an hour's packets by a hash of the source
  address into shards, run the pass on every shard with that shard's carried state, and combine the
  results with :meth:`AnalysisPass.merge`. Every pass here keys its state by source (events,
  attacks) or counts distinct sources (port series), so source-disjoint shards merge exactly.

State is a mapping of table name -> Arrow table (empty mapping: nothing carried). The table named
``open``, when a pass carries one, holds rows in its dataset's schema that are not finished yet
(an event whose source may still send); the views show the newest hour's ``open`` rows with
``open = true``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import duckdb
import pyarrow as pa

from iotscope.store.datasets import DatasetSpec
from iotscope.telescope.passes.tagging import HourTags

#: What a pass carries between hours: named Arrow tables.
State = Mapping[str, pa.Table]

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND


@dataclass(frozen=True)
class Partition:
    """One hour of packets, as the DuckDB table ``packets_hour`` on ``con`` and as Arrow ``table``.

    ``packets_hour`` holds the union of the columns the passes declared and the tagging stage's
    (``passes.tagging.TAG_COLUMNS``); ``traffic_class`` and ``tool`` are dictionary-encoded text
    (plain text to SQL). ``tags`` is the same hour as shared numpy arrays with every packet's source
    group, computed once before the passes run. ``start_us``/``end_us`` bound the hour (end
    exclusive), in µs since the epoch.

    ``horizon_us`` is how far the packets are known: the hour's end, except for the newest hour
    of the store, where it is the newest packet's time (a capture may still be growing). A run of
    packets is closed when its last packet is more than its idle timeout before the horizon; so an
    event of the newest hour stays open (carried) until later packets can tell.
    """

    hour: int  # hours since the epoch, UTC
    con: duckdb.DuckDBPyConnection
    horizon_us: int
    #: The same rows as an Arrow table (``packets_hour`` is this table, registered), for array code.
    table: pa.Table
    #: The same rows as numpy arrays with their source groups, made once for every pass (``passes.tagging``).
    tags: HourTags

    @property
    def start_us(self) -> int:
        return self.hour * US_PER_HOUR

    @property
    def end_us(self) -> int:
        return (self.hour + 1) * US_PER_HOUR


class AnalysisPass:
    """Base class of a pass; subclasses set the class attributes and implement :meth:`run`."""

    #: Unique name; also the folder of its carried state.
    name: ClassVar[str]
    #: Columns of ``packets`` the pass reads (the runner loads only the union of these).
    columns: ClassVar[tuple[str, ...]]
    #: The dataset it writes.
    dataset: ClassVar[DatasetSpec]

    def config(self) -> dict[str, object]:
        """Settings that change the output; a stored hour computed with others is re-analysed."""
        return {}

    def run(self, partition: Partition, carried: State) -> tuple[pa.Table, State]:
        """Rows finished in this hour (``dataset.schema``) and the state to carry into the next hour."""
        raise NotImplementedError

    def merge(self, results: Sequence[tuple[pa.Table, State]]) -> tuple[pa.Table, State]:
        """Combine the results of source-disjoint shards of one hour into the whole hour's result.

        The default concatenates rows and every state table, which is exact when each row and each
        state row belongs to one source; a pass whose rows aggregate over sources overrides it.
        """
        rows = pa.concat_tables([r for r, _ in results]) if results else self.dataset.schema.empty_table()
        names = sorted({name for _, state in results for name in state})
        state = {name: pa.concat_tables([s[name] for _, s in results if name in s]) for name in names}
        return rows, state

