"""Does a fresh run reproduce the committed results? Parse the Markdown tables of two results blocks,
pair them by caption and heading, and compare them cell by cell, each cell against the tolerance the two
runs themselves state for it.

A table is the Markdown table after a caption (a prose paragraph) and, optionally, a one-line heading
ending in ``:`` ("Against ct:"); its key is the caption's title (the words before the first bracket or
punctuation, e.g. "Held-out loss") plus that heading. A committed cell ``x [lo, hi]`` (a 95% interval;
anything after it, such as ``p=0.003*``, is ignored) holds a fresh cell ``y [lo', hi']`` when the two
intervals overlap, and a fresh bare number when ``lo <= y <= hi``; a bare number holds it when both print
the same at the committed number's precision; a missing value (an em dash) or text must be the same.

Why overlap: on the machine that wrote the committed block a rerun of unchanged code writes the same
bytes, but on other float kernels (another CPU, another thread count) every training run is drawn anew,
so the fresh cell is a second, independent estimate of the same quantity. Two honest 95% intervals of
the mean of 3 seeds (Student's t with 2 degrees of freedom, rhocluster.reporting.stats.seed_interval) fail
to overlap with probability about 0.5% per cell (simulated); the fresh estimate falls outside the
committed interval about 9% of the time, too often for a table of hundreds of cells. A change that moves
a result by more than both runs' uncertainty fails, naming the cell.

Tables whose title names accuracy (a few items per benchmark: one item flips a cell) or a single training
seed (one draw of a training run, its interval over documents only, so it cannot cover a redraw; the
rows' means and intervals carry the seeds) are compared by their rows and columns only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from rhocluster.reporting.readme import END, START

# Titles containing one of these words: rows and columns compared, cells not (module docstring).
IGNORED_CELLS = ("accuracy", "every training seed")
MISSING = {"—", "-", ""}
_NUMBER = r"[+\-−]?\d+(?:\.\d+)?"
_CELL = re.compile(rf"^({_NUMBER})(?:\s*\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\])?(?:\s.*)?$")
_TITLE_END = re.compile(r"[(\[,;:.]")


@dataclass(frozen=True)
class Cell:
    """One table cell: its text and, where it holds a number, the number, its printed decimals and the
    interval printed after it."""

    text: str
    value: float | None = None
    decimals: int = 0
    low: float | None = None
    high: float | None = None

    @property
    def missing(self) -> bool:
        return self.value is None and self.text in MISSING


@dataclass(frozen=True)
class Table:
    """A parsed Markdown table: its key, column headers (after the row-name column) and rows by name."""

    key: str
    columns: tuple[str, ...]
    rows: dict[str, tuple[Cell, ...]]

    @property
    def compares_cells(self) -> bool:
        return not any(word in self.key.lower() for word in IGNORED_CELLS)


@dataclass(frozen=True)
class Mismatch:
    """One way the fresh block differs from the committed one (a cell, a row, a column or a table)."""

    table: str
    what: str
    row: str | None = None
    column: str | None = None
    committed: str | None = None
    fresh: str | None = None

    def __str__(self) -> str:
        where = self.table + "".join(f", {k} {v}" for k, v in (("row", self.row), ("column", self.column)) if v)
        if self.committed is None and self.fresh is None:
            return f"{where}: {self.what}"
        return f"{where}: committed {self.committed}, fresh {self.fresh} ({self.what})"


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def parse_cell(text: str) -> Cell:
    """A cell's text -> its number, printed decimals and ``[lo, hi]`` when it holds them."""
    text = text.strip()
    m = _CELL.match(text)
    if not m:
        return Cell(text)
    value, low, high = m.groups()
    decimals = len(value.split(".")[1]) if "." in value else 0
    if low is None:
        return Cell(text, _number(value), decimals)
    return Cell(text, _number(value), decimals, _number(low), _number(high))


def results_block(text: str, source: str = "README") -> str:
    """The text between the README's results markers; fails naming ``source`` without exactly one pair."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(END) < text.index(START):
        raise ValueError(f"{source}: need exactly one {START} followed by one {END}")
    return text.split(START, 1)[1].split(END, 1)[0]


def _title(caption: str) -> str:
    return _TITLE_END.split(" ".join(caption.split()), 1)[0].strip()


def _row_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _parse_table(key: str, lines: Sequence[str], source: str) -> Table:
    if len(lines) < 2 or not set(lines[1]) <= set("|-: "):
        raise ValueError(f"{source}: table {key!r} has no header separator line")
    header = _row_cells(lines[0])
    rows: dict[str, tuple[Cell, ...]] = {}
    for line in lines[2:]:
        cells = _row_cells(line)
        if len(cells) != len(header):
            raise ValueError(
                f"{source}: table {key!r}, row {cells[0]!r} has {len(cells)} cells, the header {len(header)}"
            )
        if cells[0] in rows:
            raise ValueError(f"{source}: table {key!r} has row {cells[0]!r} twice")
        rows[cells[0]] = tuple(parse_cell(c) for c in cells[1:])
    return Table(key, tuple(header[1:]), rows)


def parse_tables(text: str, source: str = "results") -> dict[str, Table]:
    """Every Markdown table of ``text`` by key ("caption title" or "caption title / heading", "#2" after a
    repeated key), in order. Paragraphs are split on blank lines; comments, images and ``#`` headings
    name no table."""
    tables: dict[str, Table] = {}
    caption, heading = "", ""
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line for line in para.strip().split("\n") if line.strip()]
        if not lines or lines[0].startswith(("<!--", "![", "#")):
            continue
        if all(line.lstrip().startswith("|") for line in lines):
            key = _title(caption) + (f" / {heading}" if heading else "") or "table"
            n = sum(1 for k in tables if k == key or k.startswith(f"{key} #"))
            key = key if n == 0 else f"{key} #{n + 1}"
            tables[key] = _parse_table(key, lines, source)
        elif len(lines) == 1 and lines[0].rstrip().endswith(":") and len(lines[0]) <= 80:
            heading = lines[0].rstrip().rstrip(":").strip()
        else:
            caption, heading = " ".join(lines), ""
    return tables


def cell_holds(committed: Cell, fresh: Cell) -> bool:
    """Whether the fresh cell agrees with the committed one within their stated tolerance (module docstring)."""
    if committed.value is None:
        return fresh.text == committed.text or (committed.missing and fresh.missing)
    if fresh.value is None:
        return False
    if committed.low is not None and committed.high is not None:
        if fresh.low is not None and fresh.high is not None:
            return fresh.low <= committed.high and committed.low <= fresh.high
        return committed.low <= fresh.value <= committed.high
    return abs(round(fresh.value, committed.decimals) - committed.value) < 0.5 * 10.0**-committed.decimals


def _differences(name: str, kind: str, committed: Sequence[str], fresh: Sequence[str]) -> list[Mismatch]:
    out = [Mismatch(name, f"{kind} {x!r} is committed but not in the fresh run") for x in committed if x not in fresh]
    return out + [
        Mismatch(name, f"{kind} {x!r} is in the fresh run but not committed") for x in fresh if x not in committed
    ]


def compare_tables(committed: Table, fresh: Table) -> list[Mismatch]:
    """Rows and columns that differ, then every cell of the fresh table outside the committed one's tolerance."""
    name = committed.key
    out = _differences(name, "row", list(committed.rows), list(fresh.rows))
    out += _differences(name, "column", committed.columns, fresh.columns)
    if not committed.compares_cells:
        return out
    col = {c: i for i, c in enumerate(fresh.columns)}
    for row, cells in committed.rows.items():
        if row not in fresh.rows:
            continue
        for column, cell in zip(committed.columns, cells):
            if column in col and not cell_holds(cell, new := fresh.rows[row][col[column]]):
                why = (
                    "not the same at its printed precision"
                    if cell.low is None
                    else "intervals do not overlap" if new.low is not None else "outside its interval"
                )
                out.append(Mismatch(name, why, row, column, cell.text, new.text))
    return out


def compare_results(committed: str, fresh: str, source: str = "") -> list[Mismatch]:
    """Every way the fresh block's tables differ from the committed block's (empty: reproduced); each
    names ``source`` (e.g. "README.md") when given."""
    old, new = parse_tables(committed, f"committed {source}"), parse_tables(fresh, f"fresh {source}")
    out = _differences(source or "results", "table", list(old), list(new))
    for key, table in old.items():
        if key in new:
            out += compare_tables(table, new[key])
    return [replace(m, table=f"{source}: {m.table}") if source and m.table != source else m for m in out]
