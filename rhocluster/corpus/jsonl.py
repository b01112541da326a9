"""JSON-lines I/O: atomic writes, reads that say where a file is broken."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def write_jsonl(records: Iterable[dict], path: Path) -> None:
    """Write one JSON object per line (UTF-8, non-ASCII kept as is).

    The file appears atomically: records go to a temporary file in the same directory,
    which is fsynced and then ``os.replace``-d onto ``path``, so an interrupted job never
    leaves a truncated file that a later rule would take for complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Leave no stray temp file behind, whatever went wrong (including KeyboardInterrupt).
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
