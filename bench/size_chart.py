#!/usr/bin/env python3
"""Draw the per-image sizes of a recorded Kolla-style comparison as an SVG bar chart.

    python3 bench/size_chart.py                                    # bench/results/kolla_peer.json
    python3 bench/size_chart.py RECORD.json --out docs/sizes-vs-kolla.svg

One row per image (parents first, as the record lists them) and one for the set's unique
bytes: a bar for ours and one for the Kolla-style build, uncompressed MB, with the number at
the end of each bar. Standard library only (Python 3.9+).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Tuple
from xml.sax.saxutils import escape

ROW, BAR, LABEL_WIDTH, CHART_WIDTH, MARGIN = 34, 12, 130, 520, 16
COLOURS = {"ours": "#2f6db5", "kolla": "#c8553d"}
NAMES = {"ours": "ours (pants package)", "kolla": "Kolla-style (buildah bud, RUN apt-get)"}


def rows_of(record: dict) -> List[Tuple[str, float, float]]:
    """(label, ours MB, Kolla MB) per image, then the set's unique bytes."""
    sizes = record["sizes"]
    rows = [(image, sizes["ours"]["per_image"][image]["uncompressed"] / 1e6,
             sizes["kolla"]["per_image"][image]["uncompressed"] / 1e6) for image in record["images"]]
    rows.append(("set, unique bytes", sizes["ours"]["unique_uncompressed"] / 1e6,
                 sizes["kolla"]["unique_uncompressed"] / 1e6))
    return rows


def svg(rows: List[Tuple[str, float, float]], title: str) -> str:
    top = MARGIN + 44
    height = top + ROW * len(rows) + MARGIN
    width = MARGIN + LABEL_WIDTH + CHART_WIDTH + 70
    scale = CHART_WIDTH / max(max(o, k) for _, o, k in rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, side in enumerate(("ours", "kolla")):
        x = MARGIN + i * 260
        parts.append(f'<rect x="{x}" y="{MARGIN + 16}" width="12" height="12" fill="{COLOURS[side]}"/>')
        parts.append(f'<text x="{x + 18}" y="{MARGIN + 26}">{escape(NAMES[side])}</text>')
    for index, (label, ours, kolla) in enumerate(rows):
        y = top + index * ROW
        weight = ' font-weight="bold"' if index == len(rows) - 1 else ""
        parts.append(f'<text x="{MARGIN + LABEL_WIDTH - 8}" y="{y + BAR + 4}" text-anchor="end"{weight}>'
                     f'{escape(label)}</text>')
        for offset, side, value in ((0, "ours", ours), (BAR + 2, "kolla", kolla)):
            bar_width = max(1.0, value * scale)
            parts.append(f'<rect x="{MARGIN + LABEL_WIDTH}" y="{y + offset}" width="{bar_width:.1f}" '
                         f'height="{BAR}" fill="{COLOURS[side]}"/>')
            parts.append(f'<text x="{MARGIN + LABEL_WIDTH + bar_width + 4:.1f}" y="{y + offset + BAR - 2}" '
                         f'font-size="10">{value:,.0f} MB</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("record", nargs="?", default="bench/results/kolla_peer.json")
    parser.add_argument("--out", default="docs/sizes-vs-kolla.svg")
    args = parser.parse_args(argv)
    record = json.loads(Path(args.record).read_text())
    title = f"Image sizes, uncompressed ({record['machine']['when']})"
    Path(args.out).write_text(svg(rows_of(record), title))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
