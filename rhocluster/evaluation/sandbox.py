"""The harness' ``math_equal`` in a worker process, under a hard time limit.

The harness gives each comparison 3 s. sympy can spin for minutes or exhaust memory on
adversarial input, and only killing a process stops it reliably, from any thread: the
comparison runs in a persistent child (``python -m rhocluster.evaluation.sandbox --worker``),
killed when it overruns and restarted for the next request.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rhocluster.evaluation.equivalence import math_equal

_WORKER_START_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can be slow
_WORKER_MEMORY_BYTES = 4 << 30  # a runaway integer power must not take the machine down


class _Worker:
    """A persistent ``python -m rhocluster.evaluation.sandbox --worker`` child.

    Requests are JSON lines on its stdin, answers JSON lines on its stdout. A request that
    overruns its time limit gets the child killed; the next request starts a fresh one.
    One lock serialises requests, so any thread may call :meth:`compare`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        proc = subprocess.Popen(
            [sys.executable, "-m", "rhocluster.evaluation.sandbox", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._proc, self._buffer = proc, b""
        if self._read_line(_WORKER_START_TIMEOUT_S) != {"ready": True}:
            self.stop()
            raise RuntimeError("sympy grading worker failed to start")
        return proc

    def _read_line(self, timeout_s: float) -> dict[str, Any] | None:
        """Next JSON line from the child, or None on timeout or exit."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the child died (e.g. its memory limit)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def compare(self, pred: str, gold: str, timeout_s: float) -> bool | None:
        """``math_equal(pred, gold)`` in the child; None when it overran ``timeout_s``."""
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps({"pred": pred, "gold": gold}).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                self.stop()
                return None
            reply = self._read_line(timeout_s)
            if reply is None:
                self.stop()
                return None
            return bool(reply["equal"])


_WORKER = _Worker()
atexit.register(_WORKER.stop)


def math_equal_within(pred: str, gold: str, timeout_s: float) -> bool | None:
    """``math_equal(pred, gold)`` in the shared worker process; None when it overran ``timeout_s``."""
    return _WORKER.compare(pred, gold, timeout_s)


def _serve() -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # stray prints from sympy must not corrupt the protocol
    import sympy  # noqa: F401 - pay the import before announcing readiness

    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            equal = math_equal(request["pred"], request["gold"])
        except Exception:  # noqa: BLE001 - any failure means "not shown equal", as in the harness
            equal = False
        out.write(json.dumps({"equal": bool(equal)}) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
