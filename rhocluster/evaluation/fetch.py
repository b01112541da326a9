"""Download the Rho-1 harness' benchmark files at a pinned commit, verified by sha256.

A manifest (``config/rho1_benchmark_files.yaml``) names the harness repository and commit and,
per file, its ``path`` in the harness layout (``data/<name>/test.jsonl``,
``prompts/cot/<name>.md``), its ``url`` and its ``sha256``. ``sha256: null`` means "not pinned
yet": the file is downloaded, its hash is recorded (``fetch.json`` in the output folder) and
reported so that the user can pin it; until then the first download is trusted.

Downloads stream into a temporary file beside the destination and are renamed into place only
after the hash checks out, so an interrupted or corrupt transfer never leaves a file at the
final path. Files already present with the right hash are not downloaded again. With a
``cache_dir`` (which Snakemake does not manage, unlike a rule's output folder) downloads
survive a failed or re-run job and are copied from there into the output folder, which appears
whole or not at all.

Mirrors: ``RHO_BENCHMARK_MIRROR`` (whitespace-separated base URLs, ``http(s)://`` or ``file://``)
names servers of the harness' files in its own layout (``<base>/data/gsm8k/test.jsonl``); each file
is tried there first, then at its pinned URL, and checked against the same sha256 whichever
answers. Offline machines and CI serve a local copy of the harness (:mod:`rhocluster.evaluation.mirror`).
:func:`preflight` tells, before any job starts, which files no mirror, URL or cache can supply.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import yaml

from rhocluster.common.atomic import atomic_dir, atomic_path, save_json
from rhocluster.evaluation.benchmarks import HARNESS_DATA_DIR, PROMPT_FILE, check_benchmark

log = logging.getLogger(__name__)

RECORD_NAME = "fetch.json"  # provenance record written into the output folder
MIRROR_ENV = "RHO_BENCHMARK_MIRROR"  # base URLs of mirrors of the harness layout, tried before the pinned URLs
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 16
# HTTP statuses worth another try; any other 4xx is final (a wrong URL does not heal)
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repository", "commit", "files"],
    "properties": {
        "repository": {"type": "string", "description": "owner/name of the harness repository"},
        "commit": {"type": "string", "pattern": "^[0-9a-f]{7,40}$", "description": "pinned commit"},
        "files": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "url", "sha256"],
                "properties": {
                    "path": {"type": "string", "description": "relative path in the harness layout"},
                    "url": {"type": "string", "pattern": "^(https?|file)://"},
                    "sha256": {
                        "anyOf": [{"type": "string", "pattern": "^[0-9a-f]{64}$"}, {"type": "null"}],
                        "description": "hex sha256 of the file; null = record on first download",
                    },
                },
            },
        },
    },
}


class DownloadError(RuntimeError):
    """A file could not be downloaded (after the allowed retries)."""


class ChecksumMismatch(DownloadError):
    """A downloaded file's sha256 differs from the pinned one."""


class _Incomplete(OSError):
    """The server sent fewer bytes than it announced."""


@dataclass(frozen=True)
class FileSpec:
    """One manifest entry: where the file goes, where it comes from, its pinned sha256 (or None)."""

    path: str
    url: str
    sha256: str | None


@dataclass(frozen=True)
class Manifest:
    """The files of one harness commit."""

    repository: str
    commit: str
    files: tuple[FileSpec, ...]
    source: str = ""  # the manifest file, for messages


@dataclass(frozen=True)
class FetchedFile:
    """Outcome for one file: its verified (or, unpinned, recorded) sha256 and whether it was downloaded."""

    path: str
    url: str
    sha256: str
    pinned: bool
    downloaded: bool


def _check_relative(path: str, where: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path:
        raise ValueError(f"{where}: path {path!r} must be relative, without '..'")
    return str(PurePosixPath(path))


def parse_manifest(data: Any, source: str = "<manifest>") -> Manifest:
    """Validate a manifest mapping (see :data:`MANIFEST_SCHEMA`); errors name the bad key."""
    import jsonschema

    try:
        jsonschema.validate(data, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as err:
        key = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ValueError(f"{source}: invalid manifest at {key}: {err.message}") from None
    files = []
    seen: set[str] = set()
    for index, entry in enumerate(data["files"]):
        path = _check_relative(entry["path"], f"{source}: files/{index}")
        if path in seen:
            raise ValueError(f"{source}: files/{index}: path {path!r} listed twice")
        seen.add(path)
        files.append(FileSpec(path, entry["url"], entry["sha256"]))
    return Manifest(data["repository"], data["commit"], tuple(files), source)


def load_manifest(path: Path | str) -> Manifest:
    """Read and validate a manifest YAML file."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        return parse_manifest(yaml.safe_load(fh), str(path))


def required_paths(benchmarks: Iterable[str]) -> list[str]:
    """Harness-layout files that evaluating ``benchmarks`` reads (test files, then prompt files)."""
    benchmarks = [check_benchmark(b) for b in benchmarks]
    data = [f"data/{HARNESS_DATA_DIR[b]}/test.jsonl" for b in benchmarks]
    prompts = [f"prompts/cot/{PROMPT_FILE[b]}.md" for b in benchmarks]
    return list(dict.fromkeys(data + prompts))


def select_files(manifest: Manifest, benchmarks: Iterable[str] | None) -> list[FileSpec]:
    """The manifest entries ``benchmarks`` need (all entries for None); ValueError if any is missing."""
    if benchmarks is None:
        return list(manifest.files)
    by_path = {spec.path: spec for spec in manifest.files}
    needed = required_paths(benchmarks)
    missing = [path for path in needed if path not in by_path]
    if missing:
        raise ValueError(f"{manifest.source or 'manifest'} lacks file(s) the benchmarks need: {', '.join(missing)}")
    return [by_path[path] for path in needed]


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_once(url: str, dest: Path, expected: str | None, timeout_s: float) -> str:
    digest = hashlib.sha256()
    size = 0
    # atomic_path deletes the temporary file unless the block completes: no partial file survives
    with atomic_path(dest, ".part") as tmp:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            announced = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if announced is not None and announced.isdigit() and size != int(announced):
            raise _Incomplete(f"got {size} of {announced} bytes")
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise ChecksumMismatch(
                f"sha256 mismatch for {url}:\n  expected {expected}\n  got      {actual} ({size} bytes)\n"
                f"{dest} was not written; check the URL's commit or update the pinned sha256."
            )
    return actual


def download(
    url: str,
    dest: Path | str,
    sha256: str | None = None,
    *,
    retries: int = 3,
    timeout_s: float = 60.0,
    backoff_s: float = 1.0,
) -> str:
    """Download ``url`` to ``dest`` atomically; return the file's sha256.

    Transient failures (connection errors, timeouts, short reads, HTTP 5xx/429) are retried
    ``retries`` times in all with exponential backoff. A sha256 mismatch or another HTTP error
    fails at once. On any failure nothing is written at ``dest``.
    """
    if sha256 is not None and not _SHA256.match(sha256):
        raise ValueError(f"sha256 for {url} must be 64 lowercase hex digits, got {sha256!r}")
    dest = Path(dest)
    last: Exception | None = None
    for attempt in range(1, max(1, retries) + 1):
        try:
            return _download_once(url, dest, sha256, timeout_s)
        except ChecksumMismatch:
            raise
        except urllib.error.HTTPError as err:
            if err.code not in _RETRY_STATUS:
                raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
            last = err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            last = err
        log.warning("download of %s failed (attempt %d of %d): %s", url, attempt, retries, last)
        if attempt < retries:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise DownloadError(f"cannot download {url} after {retries} attempt(s): {last}") from last


def mirrors_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """Base URLs of harness mirrors named by ``RHO_BENCHMARK_MIRROR`` (whitespace-separated; none when unset)."""
    value = (os.environ if environ is None else environ).get(MIRROR_ENV, "")
    mirrors = value.split()
    bad = [m for m in mirrors if not re.match(r"^(https?|file)://", m)]
    if bad:
        raise ValueError(f"{MIRROR_ENV}: {bad[0]!r} is not an http(s):// or file:// base URL")
    return mirrors


def candidate_urls(spec: FileSpec, mirrors: Sequence[str] = ()) -> list[str]:
    """Where ``spec`` may come from, in order: each mirror's copy in the harness layout, then its pinned URL."""
    return [f"{m.rstrip('/')}/{spec.path}" for m in mirrors] + [spec.url]


def _fetch_one(
    spec: FileSpec, target: Path, mirrors: Sequence[str], retries: int, timeout_s: float, backoff_s: float
) -> str:
    """Download ``spec`` to ``target`` from the first source that answers; a wrong hash from any source stops."""
    failures = []
    for url in candidate_urls(spec, mirrors):
        try:
            log.info("downloading %s -> %s", url, target)
            return download(url, target, spec.sha256, retries=retries, timeout_s=timeout_s, backoff_s=backoff_s)
        except ChecksumMismatch as err:
            raise ChecksumMismatch(f"{spec.path}: {err}") from None
        except DownloadError as err:
            failures.append(str(err))
    raise DownloadError(
        f"{spec.path}: no source could supply it:\n  " + "\n  ".join(failures)
        + f"\n{_WHAT_TO_DO}"
    )


_WHAT_TO_DO = (
    "Run where raw.githubusercontent.com is reachable; or set RHO_BENCHMARK_MIRROR to the base URL of a copy of "
    "the harness files in its layout (python -m rhocluster.evaluation.mirror DIR -- <command> serves DIR on "
    "localhost for a command); or put the files in evaluation.fetch.cache_dir/<commit>/<path>."
)


def fetch_files(
    manifest: Manifest,
    out_dir: Path | str,
    *,
    benchmarks: Sequence[str] | None = None,
    cache_dir: Path | str | None = None,
    mirrors: Sequence[str] = (),
    retries: int = 3,
    timeout_s: float = 60.0,
    backoff_s: float = 1.0,
) -> list[FetchedFile]:
    """Make ``out_dir`` a harness-layout folder with the manifest's files, verified; return what happened.

    Only the files ``benchmarks`` need are fetched (all files when None), each from the first of
    ``mirrors`` that has it, else from its URL (:func:`candidate_urls`). A file already in place (in
    ``cache_dir/<commit>/`` when given, else in ``out_dir``) with the pinned sha256 is not downloaded
    again; an unpinned one is kept as first downloaded and its hash reported. Writes
    ``out_dir/fetch.json`` with the repository, commit and every file's url and sha256; with a
    ``cache_dir``, ``out_dir`` appears only once every file checked out.
    """
    out_dir = Path(out_dir)
    specs = select_files(manifest, benchmarks)
    if cache_dir is None:
        return _fetch_into(manifest, specs, out_dir, out_dir, out_dir, mirrors, retries, timeout_s, backoff_s)
    with atomic_dir(out_dir) as tmp:
        return _fetch_into(
            manifest, specs, Path(cache_dir) / manifest.commit, tmp, out_dir, mirrors, retries, timeout_s, backoff_s
        )


def _fetch_into(
    manifest: Manifest,
    specs: list[FileSpec],
    root: Path,
    out_dir: Path,
    final_dir: Path,
    mirrors: Sequence[str],
    retries: int,
    timeout_s: float,
    backoff_s: float,
) -> list[FetchedFile]:
    """Fetch ``specs`` into ``root`` (the cache, or the output folder itself) and copy them to ``out_dir``."""
    fetched: list[FetchedFile] = []
    for spec in specs:
        target = root / spec.path
        actual: str | None = None
        if target.is_file():
            actual = sha256_file(target)
            if spec.sha256 is not None and actual != spec.sha256:
                log.info("%s: cached copy has sha256 %s, not the pinned %s: downloading again", target, actual, spec.sha256)
                actual = None
        downloaded = actual is None
        if actual is None:
            actual = _fetch_one(spec, target, mirrors, retries, timeout_s, backoff_s)
        else:
            log.info("%s: present with sha256 %s, not downloaded", target, actual)
        if spec.sha256 is None:
            log.warning(
                "%s: no sha256 pinned in %s; %s has sha256 %s. Pin it there: sha256: %s",
                spec.path, manifest.source or "the manifest", spec.url, actual, actual,
            )
        if root != out_dir:
            dest = out_dir / spec.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, dest)
        fetched.append(FetchedFile(spec.path, spec.url, actual, spec.sha256 is not None, downloaded))
    record = {
        "repository": manifest.repository,
        "commit": manifest.commit,
        "manifest": manifest.source,
        "files": [{"path": f.path, "url": f.url, "sha256": f.sha256, "pinned": f.pinned} for f in fetched],
    }
    save_json(out_dir / RECORD_NAME, record)
    log.info("%d files in %s", len(fetched), final_dir)
    return fetched


def _probe(url: str, timeout_s: float) -> str | None:
    """None when ``url`` answers a HEAD request (a GET where HEAD is not allowed) with 200, else why not."""
    try:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
                return None
        except urllib.error.HTTPError as err:
            if err.code not in (405, 501):
                raise
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                response.read()
                return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} {err.reason}"
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"


def preflight(
    manifest: Manifest,
    benchmarks: Sequence[str] | None,
    cache_dir: Path | str | None,
    mirrors: Sequence[str] = (),
    timeout_s: float = 10.0,
) -> list[str]:
    """Problems that would stop :func:`fetch_files` for ``benchmarks``, found before any job starts: files
    neither cached with their pinned hash nor answered for by a mirror or their URL. Each host that does
    not answer is tried once (an offline machine waits at most ``timeout_s`` per host)."""
    try:
        specs = select_files(manifest, benchmarks)
    except ValueError as err:
        return [str(err)]
    dead_hosts: dict[str, str] = {}
    missing = []
    for spec in specs:
        cached = Path(cache_dir) / manifest.commit / spec.path if cache_dir is not None else None
        if cached is not None and cached.is_file() and spec.sha256 in (None, sha256_file(cached)):
            continue
        reasons = []
        for url in candidate_urls(spec, mirrors):
            host = urllib.parse.urlsplit(url).netloc
            why = dead_hosts.get(host) if host else None
            if why is None:
                why = _probe(url, timeout_s)
                if why is not None and not why.startswith("HTTP") and host:
                    dead_hosts[host] = why  # unreachable: no other file from there either
            if why is None:
                break
            reasons.append(f"{url}: {why}")
        else:
            missing.append(f"{spec.path} ({'; '.join(reasons)})")
    if not missing:
        return []
    return [
        f"evaluation benchmarks ({manifest.source or 'manifest'}, {manifest.repository}@{manifest.commit}): "
        f"no mirror, URL or cache supplies {', '.join(missing)}. {_WHAT_TO_DO}"
    ]


def unpinned_notice(fetched: Iterable[FetchedFile], manifest: Manifest) -> str:
    """Lines telling the user which hashes to pin in the manifest ('' when every file is pinned)."""
    lines = [f"  - path: {f.path}\n    sha256: {f.sha256}" for f in fetched if not f.pinned]
    if not lines:
        return ""
    return f"unpinned files in {manifest.source or 'the manifest'}; recorded on first download, pin them:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m rhocluster.evaluation.fetch MANIFEST OUT_DIR [--benchmarks a,b]``."""
    parser = argparse.ArgumentParser(description="Fetch the Rho-1 harness benchmark files, verified by sha256.")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--benchmarks", help="comma-separated benchmark names (default: every file of the manifest)")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    manifest = load_manifest(args.manifest)
    benchmarks = args.benchmarks.split(",") if args.benchmarks else None
    fetched = fetch_files(
        manifest, args.out_dir, benchmarks=benchmarks, cache_dir=args.cache_dir, mirrors=mirrors_from_env(),
        retries=args.retries, timeout_s=args.timeout_s,
    )
    print(f"{len(fetched)} files in {args.out_dir} ({sum(f.downloaded for f in fetched)} downloaded)")
    notice = unpinned_notice(fetched, manifest)
    if notice:
        print(notice)


if __name__ == "__main__":
    main()
