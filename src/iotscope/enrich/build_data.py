"""``python -m iotscope.enrich.build_data``: the build step ``make geo-data`` runs (once, not at run time)."""

from __future__ import annotations

import argparse
from pathlib import Path

from iotscope.enrich.default_data import build_default, default_data_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build iotscope's embedded geo/ASN table from pinned npm data.")
    parser.add_argument("--node-modules", type=Path, default=Path("data/geo/node_modules"))
    parser.add_argument("--out", type=Path, default=default_data_dir())
    args = parser.parse_args(argv)
    out = build_default(args.node_modules, args.out)
    print(f"enrich default data written to {out}")


if __name__ == "__main__":
    main()
