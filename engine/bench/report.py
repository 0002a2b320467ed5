"""How every benchmark reports: the machine it ran on and plain-text tables.

Imports nothing of the project's, so every benchmark and the CLI can use it.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

import torch


def table(rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table, first row the header; columns left-aligned, numbers right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

    def fmt(row: list[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            numeric = cell.replace(".", "", 1).replace("-", "", 1).replace("%", "").isdigit()
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return "\n".join(fmt(row) for row in cells)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    threads = torch.get_num_threads()
    summary = f"{platform.machine()} {platform.system()}, torch {torch.__version__}, {threads} thread(s)"
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "summary": summary,
    }
