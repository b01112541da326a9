"""Serve a local copy of the harness files over HTTP on localhost, as a mirror for ``fetch_benchmarks``.

A machine without access to raw.githubusercontent.com (CI, the smoke run, tests) fetches the
benchmark files through the same code as a cluster's submit host, from a mirror: a directory in the
harness' layout (``data/<name>/test.jsonl``, ``prompts/cot/<name>.md``) served here, checked against
the manifest's sha256 like any download. ``RHO_BENCHMARK_MIRROR`` tells the fetch code where it is::

    python -m rhocluster.evaluation.mirror ../shared/benchmarks/math-evaluation-harness-7fd4949 -- \\
        snakemake --cores all --configfile config/rho1-tinyllama.yaml config/rho1-smoke.yaml

serves the directory on a free port for as long as the command runs, with ``RHO_BENCHMARK_MIRROR``
set for it, and exits with its status.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Sequence

from rhocluster.evaluation.fetch import MIRROR_ENV


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@contextmanager
def serve(directory: Path | str) -> Iterator[str]:
    """Serve ``directory`` read-only on 127.0.0.1 at a free port in a background thread; yield its base URL."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"mirror directory {directory} does not exist")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def mirror_env(url: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process') with ``url`` first among the mirrors, and localhost off any proxy."""
    env = dict(os.environ if environ is None else environ)
    env[MIRROR_ENV] = " ".join([url, *env.get(MIRROR_ENV, "").split()])
    env["no_proxy"] = env["NO_PROXY"] = ",".join(filter(None, [env.get("no_proxy", ""), "127.0.0.1", "localhost"]))
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rhocluster.evaluation.mirror DIR -- COMMAND...``; returns COMMAND's status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="a copy of the harness files in its layout")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with serve(args.directory) as url:
        print(f"serving {args.directory} at {url} ({MIRROR_ENV})", file=sys.stderr)
        return subprocess.run(command, env=mirror_env(url)).returncode


if __name__ == "__main__":
    sys.exit(main())
