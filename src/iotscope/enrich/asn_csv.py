"""Reading ip-location-db's numeric ASN ranges (``asn-ipv4-num.csv``) into a RangeTable.

ip-location-db ships its IP-to-ASN data (Route Views prefixes, DB-IP ASN Lite names) as CSV
rows ``first,last,asn,name`` with addresses as integers; pyarrow's CSV reader parses the 400k
rows in well under a second and dictionary-encodes the names, so no Python loop is needed.
The file is not strictly a partition (the pinned release has one pair of partly overlapping DoD
ranges); an overlap is resolved in favour of the range that starts later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from iotscope.enrich.errors import EnrichDataError
from iotscope.enrich.ranges import RangeTable, from_intervals
from iotscope.enrich.source import EnrichmentSource


def read_asn_csv(path: Path, source: EnrichmentSource) -> RangeTable:
    """The ASN ranges of ``path`` (columns first, last, asn, name; no header)."""
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["first", "last", "asn", "as_name"]),
            convert_options=pacsv.ConvertOptions(
                column_types={"first": pa.uint32(), "last": pa.uint32(), "asn": pa.uint32(), "as_name": pa.string()},
                strings_can_be_null=True,
            ),
        )
        names = table.column("as_name").combine_chunks().dictionary_encode()
        return from_intervals(
            table.column("first").to_numpy(),
            table.column("last").to_numpy(),
            {
                "asn": table.column("asn").to_numpy(),
                "as_name": names.indices.fill_null(-1).to_numpy().astype(np.int32),
            },
            as_names=tuple(names.dictionary.to_pylist()),
            sources=(source,),
            clip_overlaps=True,
        )
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        raise EnrichDataError(f"{path}: not a readable ASN range CSV ({' '.join(str(exc).split())})") from None
