"""The generated parts of the project's markdown pages: each between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->``, replaced from a record by scripts/readme.py (the demo's) and
scripts/study_docs.py (the Fashion-MNIST study's); the prose around them is written by hand."""
from __future__ import annotations

import re

BLOCK = re.compile(r"(<!-- generated: (\S+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)


def update(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each generated part replaced by its block (a part without a block is kept)."""
    return BLOCK.sub(lambda m: m.group(1) + blocks.get(m.group(2), m.group(3)) + m.group(4), text)


def parts(text: str) -> dict[str, str]:
    """The generated parts of ``text``, by name."""
    return {m.group(2): m.group(3) for m in BLOCK.finditer(text)}
