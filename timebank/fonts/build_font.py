"""Rebuild ``timebank/fonts/wqy-microhei-gbk.ttf``, the default font of service certificates.

The font is WenQuanYi Micro Hei 0.2.0-beta (Apache-2.0; Droid Sans Fallback for the Han characters,
Droid Sans for Latin), face 0 of the TTC in Debian's package ``fonts-wqy-microhei``
0.2.0-beta-3.1, cut down to the characters of GBK: every character that Python's ``gbk`` codec
encodes (ASCII, the CJK punctuation, GB 2312, and all 20,902 ideographs of the CJK Unified
Ideographs block, so given names such as 玥 喆 堃 赟 镕 that GB 2312 lacks are in). Layout
tables, vertical metrics and hinting go, since reportlab uses none of them; the outlines stay
TrueType (``glyf``), which is what reportlab's TTFont embeds, subsetted, in each PDF.

    apt-get download fonts-wqy-microhei && dpkg-deb -x fonts-wqy-microhei_*.deb /tmp/wqy
    .venv/bin/python -m timebank.fonts.build_font /tmp/wqy/usr/share/fonts/truetype/wqy/wqy-microhei.ttc

Needs fontTools (``pip install -e '.[dev]'``). The output is byte-for-byte reproducible from the
same input and fontTools version; the script prints both digests.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

SOURCE_SHA256 = "2420e8078af796b19a3f6ef13de527a1a91c1e7171eea115926c614ced1009b3"
OUTPUT = Path(__file__).resolve().parent / "wqy-microhei-gbk.ttf"
VERSION_NOTE = "; GBK subset for timebank certificates (tools/build_certificate_font.py)"


def gbk_codepoints() -> set[int]:
    """Every printable BMP character that GBK can encode."""
    points = set()
    for cp in range(0x20, 0x10000):
        ch = chr(cp)
        if ch.isprintable() or ch == " ":
            try:
                ch.encode("gbk")
            except UnicodeEncodeError:
                continue
            points.add(cp)
    return points


def build(source: Path, output: Path) -> tuple[int, int]:
    """Write the subset; returns (characters kept, characters of GBK the font lacks)."""
    font = TTFont(source, fontNumber=0, recalcTimestamp=False)
    wanted = gbk_codepoints()
    cmap = set(font.getBestCmap())
    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["FFTM", "GDEF", "GPOS", "GSUB", "vhea", "vmtx", "gasp"]
    options.hinting = False
    options.notdef_outline = True  # a box, not nothing, if a viewer ever asks for glyph 0
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.glyph_names = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted & cmap)
    subsetter.subset(font)
    for record in font["name"].names:
        if record.nameID == 5:  # version string: say that this is a modified file (Apache-2.0 §4b)
            record.string = record.toUnicode() + VERSION_NOTE
    font.save(output)
    return len(wanted & cmap), len(wanted - cmap)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ttc", type=Path, help="wqy-microhei.ttc from fonts-wqy-microhei 0.2.0-beta-3.1")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    digest = hashlib.sha256(args.ttc.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{args.ttc}: sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 1
    kept, lacking = build(args.ttc, args.output)
    out = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"{args.output}: {kept} characters ({lacking} of GBK not in the font), sha256 {out}")
    print(f"source sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
