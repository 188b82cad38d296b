"""ip-location-db's numeric ASN CSV becomes ranges; its overlaps resolve to the later range."""

from __future__ import annotations

import numpy as np
import pytest

from iotscope.enrich.asn_csv import read_asn_csv
from iotscope.enrich.errors import EnrichDataError
from iotscope.enrich.source import EnrichmentSource

SOURCE = EnrichmentSource(name="t", provides="asn", date="2026-06-17", licence="CC BY 4.0", origin="test")


def test_rows_names_and_the_overlap_case(tmp_path):
    path = tmp_path / "asn.csv"
    # the shape of the one overlap in the pinned data: a range starting inside the previous one
    path.write_text('16777216,16777471,13335,"Cloudflare, Inc."\n100,200,749,DoD\n150,300,721,DoD NIC\n400,400,0,\n')
    table = read_asn_csv(path, SOURCE)
    rows = table.row_index(np.array([99, 100, 149, 150, 300, 301, 400, 16777300], np.uint32))
    assert table.columns["asn"][rows].tolist() == [0, 749, 749, 721, 721, 0, 0, 13335]
    names = [table.as_names[i] if i >= 0 else None for i in table.columns["as_name"][rows]]
    assert names[-1] == "Cloudflare, Inc." and names[3] == "DoD NIC" and names[0] is None
    assert table.sources == (SOURCE,)


@pytest.mark.parametrize("text", ["not,a,number,row\n", "1,2\n", "5,4294967296,1,x\n"])
def test_malformed_csv_is_one_line_error(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(EnrichDataError) as caught:
        read_asn_csv(path, SOURCE)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
