"""JSON-lines I/O: atomic writes, reads that say where a file is broken."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rhocluster.common.atomic import atomic_path


def write_jsonl(records: Iterable[dict], path: Path) -> None:
    """Write one JSON object per line (UTF-8, non-ASCII kept as is).

    The file appears atomically (:func:`~rhocluster.common.atomic.atomic_path`, fsynced first), so an
    interrupted job never leaves a truncated file that a later rule would take for complete.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield the object on each non-blank line of ``path``.

    Raises ``ValueError("<path>:<line>: ...")`` for a line that is not valid JSON or not a
    JSON object; blank lines (e.g. a trailing newline added by an editor) are skipped.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON line: {e.msg} (column {e.colno})") from e
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield record
