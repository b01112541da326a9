"""Pinned, verified, cached downloads from the Hugging Face hub (or a local directory in its place).

A *source* is a repository (``org/name`` on the hub, or a local directory laid out like one), a revision
and glob patterns of the files wanted. :func:`fetch` resolves the revision to a commit, downloads the
matching files into a cache (``huggingface_hub``'s, so interrupted downloads resume and finished ones are
reused), checks each against the hub's own checksum (sha256 of LFS files, the git blob id of the others)
and against any sha256 pinned in the config, and returns a :class:`Manifest` that the fetch rules write
as their output. A local directory goes through the same listing, pattern matching, hashing and
manifest code, which is how the tests exercise this module offline.

Verified hashes are recorded per commit under ``{cache_dir}/rhocluster/``; with that record a pinned
source is fetched again without any network access (``HF_HUB_OFFLINE=1`` works from the cache).

    python -m rhocluster.hub pin --configfile config/rho1-tinyllama.yaml [--write]
    python -m rhocluster.hub check --configfile config/rho1-tinyllama.yaml
    python -m rhocluster.hub local resources/hub    # stand-ins for the real config's repositories
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rhocluster.common.atomic import atomic_dir, save_json

COMMIT = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20
PIN_COMMAND = "python -m rhocluster.hub pin --configfile {configfile} --write"


class HubError(RuntimeError):
    """A source cannot be fetched; the message says which config key or setting to change."""


@dataclass(frozen=True)
class HubSource:
    """One repository to fetch files from. ``repo`` is a hub id or a local directory."""

    repo: str
    revision: str
    repo_type: str  # "dataset" or "model"
    files: tuple[str, ...] = ("*",)
    sha256: dict[str, str] = field(default_factory=dict)  # pinned checksums: path -> hex
    key: str = ""  # config key of the source, for messages ("data.web")

    @classmethod
    def from_config(cls, spec: dict, repo_type: str, key: str = "") -> HubSource:
        """Build from a config mapping with ``repo``, ``revision`` and optional ``files`` and ``sha256``."""
        return cls(
            repo=str(spec["repo"]),
            revision=str(spec["revision"]),
            repo_type=repo_type,
            files=tuple(spec.get("files") or ("*",)),
            sha256=dict(spec.get("sha256") or {}),
            key=key,
        )

    @property
    def is_local(self) -> bool:
        """A local directory stands in for the hub repository: an existing directory, or a path that no hub
        id can be (absolute, starting with ``.``, or more than the one ``/`` of ``org/name``), so that a
        local directory not written yet is reported missing rather than looked up on the hub."""
        return Path(self.repo).is_dir() or self.repo.startswith(("/", "./", "../")) or self.repo.count("/") > 1

    @property
    def pinned(self) -> bool:
        """The revision is a full commit hash (local directories count as pinned: they are hashed)."""
        return self.is_local or bool(COMMIT.match(self.revision))

    def label(self) -> str:
        return f"{self.key + ': ' if self.key else ''}{self.repo_type} {self.repo}@{self.revision}"


@dataclass
class FileRecord:
    """One fetched file: its path in the repository, size, sha256 and where it lies on this machine."""

    path: str
    size: int
    sha256: str
    local_path: str
    num_rows: int | None = None  # parquet files: rows, filled in by the dataset fetch


@dataclass
class Manifest:
    """What a fetch rule writes: the source, the commit it resolved to and every file fetched."""

    repo: str
    repo_type: str
    revision: str
    commit: str
    pinned: bool
    files: list[FileRecord]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(**{**d, "files": [FileRecord(**f) for f in d["files"]]})

    def save(self, path: Path | str) -> None:
        """Write the manifest as JSON atomically."""
        save_json(path, self.to_dict())


def load_manifest(path: Path | str) -> Manifest:
    """Read a manifest written by :meth:`Manifest.save`, checking that its files are still there."""
    manifest = Manifest.from_dict(json.loads(Path(path).read_text()))
    for f in manifest.files:
        local = Path(f.local_path)
        if not local.is_file() or local.stat().st_size != f.size:
            raise HubError(
                f"{path}: {f.path} is missing or changed at {local} (was the hub cache deleted?); "
                f"delete {path} and rerun to fetch it again"
            )
    return manifest


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


# --- hashing -------------------------------------------------------------------------------------


def file_hashes(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file in one pass; the hub lists the second as a non-LFS file's blob id."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest()


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


# --- listing -------------------------------------------------------------------------------------


@dataclass
class _Listed:
    path: str
    size: int
    sha256: str | None  # LFS files: known from the hub before download
    blob_id: str | None  # non-LFS files: git blob sha1


def _cache_record_path(cache_dir: Path, source: HubSource, commit: str) -> Path:
    return cache_dir / "rhocluster" / f"{source.repo_type}s" / source.repo.replace("/", "--") / f"{commit}.json"


def _list_hub(source: HubSource, api: Any | None, timeout: float | None = None) -> tuple[str, list[_Listed]]:
    """Commit and file listing of a hub repository at the source's revision (one API call)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    api = api or HfApi(endpoint=hub_endpoint())
    try:
        info = api.repo_info(
            source.repo, revision=source.revision, repo_type=source.repo_type, files_metadata=True, timeout=timeout
        )
    except RevisionNotFoundError as err:
        raise HubError(f"{source.label()}: revision not found on the hub; fix {source.key}.revision") from err
    except RepositoryNotFoundError as err:
        raise HubError(
            f"{source.label()}: repository not found (or gated: log in with `hf auth login`); fix {source.key}.repo"
        ) from err
    except Exception as err:  # network errors come in many types (httpx, OSError, timeouts)
        raise HubError(_unreachable_message(source, err)) from err
    listed = []
    for s in info.siblings or []:
        lfs = getattr(s, "lfs", None)
        listed.append(
            _Listed(
                path=s.rfilename,
                size=int(lfs.size if lfs else (s.size or 0)),
                sha256=lfs.sha256 if lfs else None,
                blob_id=None if lfs else s.blob_id,
            )
        )
    return info.sha, listed


def _unreachable_message(source: HubSource, err: BaseException) -> str:
    return (
        f"{source.label()}: cannot reach the Hugging Face hub at {hub_endpoint()} ({type(err).__name__}: {err}). "
        "Fetch rules run on the host that runs snakemake (local rules), so run it where the hub is reachable; "
        "or fetch once elsewhere and copy hub.cache_dir here and set HF_HUB_OFFLINE=1 (pinned revisions only); "
        f"or set {source.key or 'the source'}.repo to a local directory holding the files"
    )


def _list_local(source: HubSource) -> tuple[str, list[FileRecord]]:
    """Files of a local directory matching the patterns, hashed; the 'commit' is a hash of the listing."""
    root = Path(source.repo).resolve()
    if not root.is_dir():
        raise HubError(f"{source.label()}: local directory {root} does not exist; fix {source.key}.repo")
    records = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(".") and _matches(rel, source.files):
            sha256, _ = file_hashes(p)
            records.append(FileRecord(rel, p.stat().st_size, sha256, str(p)))
    listing = json.dumps([(r.path, r.sha256) for r in records]).encode()
    return "local-" + hashlib.sha256(listing).hexdigest()[:40], records


# --- fetching ------------------------------------------------------------------------------------


def fetch(
    source: HubSource,
    cache_dir: Path | str,
    *,
    allow_unpinned: bool = False,
    offline: bool | None = None,
    api: Any | None = None,
    log: Any | None = None,
    workers: int = 4,
) -> Manifest:
    """Download (or reuse) the source's files, ``workers`` at a time, and verify them; see the module
    docstring.

    Raises :class:`HubError` for an unpinned revision (unless ``allow_unpinned``), an unreachable hub,
    patterns that match nothing, or a checksum mismatch.
    """
    cache_dir = Path(cache_dir)
    if source.is_local:
        commit, records = _list_local(source)
    else:
        offline = is_offline() if offline is None else offline
        commit, records = _fetch_hub(source, cache_dir, allow_unpinned, offline, api, log, workers)
    if not records:
        raise HubError(f"{source.label()}: no file matches {list(source.files)}; fix {source.key}.files")
    by_path = {r.path: r for r in records}
    for path, want in source.sha256.items():
        if path not in by_path:
            raise HubError(f"{source.label()}: {source.key}.sha256 pins {path}, which is not among the fetched files")
        if by_path[path].sha256 != want.lower():
            raise HubError(
                f"{source.label()}: {path} has sha256 {by_path[path].sha256}, but {source.key}.sha256 pins {want}"
            )
    return Manifest(source.repo, source.repo_type, source.revision, commit, source.pinned, records)


def _fetch_hub(
    source: HubSource,
    cache_dir: Path,
    allow_unpinned: bool,
    offline: bool,
    api: Any | None,
    log: Any | None,
    workers: int,
) -> tuple[str, list[FileRecord]]:
    from huggingface_hub import hf_hub_download

    if not source.pinned and not allow_unpinned:
        raise HubError(
            f"{source.label()}: revision {source.revision!r} is not a commit hash. Pin it: "
            f"{PIN_COMMAND.format(configfile='<your config>')} (or set hub.allow_unpinned: true to accept "
            "whatever the branch points to now; the manifest records the commit either way)"
        )
    record_path = _cache_record_path(cache_dir, source, source.revision) if source.pinned else None
    record = json.loads(record_path.read_text()) if record_path and record_path.is_file() else None
    if record is not None:
        commit, listed = record["commit"], [_Listed(**f) for f in record["listed"]]
        verified = record.get("verified", {})
    elif offline:
        raise HubError(
            f"{source.label()}: HF_HUB_OFFLINE is set and {cache_dir} holds no verified copy of this "
            "revision. Unset HF_HUB_OFFLINE where the hub is reachable, or copy a hub.cache_dir that holds it, "
            f"or set {source.key}.repo to a local directory"
        )
    else:
        commit, listed = _list_hub(source, api)
        verified = {}
    wanted = [f for f in listed if _matches(f.path, source.files)]
    if not wanted:
        shown = ", ".join(f.path for f in listed[:20]) + (" ..." if len(listed) > 20 else "")
        raise HubError(f"{source.label()}: no file matches {list(source.files)}; the repository holds: {shown}")
    def get(f: _Listed) -> FileRecord:
        local = Path(
            hf_hub_download(
                source.repo,
                f.path,
                repo_type=source.repo_type,
                revision=commit,
                cache_dir=cache_dir,
                local_files_only=offline,
            )
        ).resolve()
        stat = local.stat()
        seen = verified.get(f.path)
        if seen and seen["size"] == stat.st_size and seen["mtime_ns"] == stat.st_mtime_ns:
            sha256 = seen["sha256"]  # verified before, unchanged since: skip re-hashing gigabytes
        else:
            sha256, blob = file_hashes(local)
            if stat.st_size != f.size or (f.sha256 and sha256 != f.sha256) or (f.blob_id and blob != f.blob_id):
                local.unlink()  # a corrupt blob in the cache would be reused forever
                raise HubError(
                    f"{source.label()}: {f.path} failed verification against the hub's checksum "
                    f"(size {stat.st_size} vs {f.size}); removed from the cache, rerun to download it again"
                )
            verified[f.path] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if log is not None:
            log.info("%s %s: %d bytes, sha256 %s", source.repo, f.path, stat.st_size, sha256)
        return FileRecord(f.path, stat.st_size, sha256, str(local))

    # Several files at a time (downloads are network-bound, hashing I/O-bound); results keep the
    # listing's order, and the record below is written only when every file checked out.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        records = list(pool.map(get, wanted))
    save_json(
        _cache_record_path(cache_dir, source, commit),
        {"repo": source.repo, "commit": commit, "listed": [asdict(f) for f in listed], "verified": verified},
    )
    return commit, records


def materialize(manifest: Manifest, out_dir: Path | str) -> None:
    """Lay the manifest's files out under ``out_dir`` (hard links where possible, else copies) with the
    manifest beside them as ``fetch.json``; the directory appears atomically."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        placed = []
        for f in manifest.files:
            dest = tmp / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f.local_path, dest)
            except OSError:
                shutil.copy2(f.local_path, dest)
            placed.append(FileRecord(**{**asdict(f), "local_path": str((out_dir / f.path).resolve())}))
        Manifest(**{**asdict(manifest), "files": placed}).save(tmp / "fetch.json")


# --- the sources of a workflow config ------------------------------------------------------------


def config_sources(config: dict) -> dict[str, HubSource]:
    """Every hub source a workflow config fetches, by the name of the fetch job that downloads it
    (``owm``, ``hq/<dataset>``, ``base``)."""
    sources: dict[str, HubSource] = {}
    data = config.get("data", {})
    if data.get("source") == "hf":
        sources["owm"] = HubSource.from_config(data["web"], "dataset", "data.web")
        for i, ds in enumerate(data["hq"]["datasets"]):
            sources[f"hq/{ds['name']}"] = HubSource.from_config(ds, "dataset", f"data.hq.datasets[{i}]")
    base = config.get("base", {})
    if base.get("source") == "hf" and base.get("hub"):
        sources["base"] = HubSource.from_config(base["hub"], "model", "base.hub")
    return sources


def preflight(
    sources: Iterable[HubSource],
    cache_dir: Path | str,
    *,
    allow_unpinned: bool = False,
    offline: bool | None = None,
    api: Any | None = None,
    timeout: float = 15.0,
    config_path: str = "<config>",
) -> list[str]:
    """Problems that would make fetching ``sources`` fail, found before any job starts: a missing local
    directory, an unpinned revision, offline mode without a cached copy, an unreachable hub."""
    cache_dir = Path(cache_dir)
    offline = is_offline() if offline is None else offline
    problems = []
    for source in sources:
        if source.is_local:
            if not Path(source.repo).is_dir():
                problems.append(f"{source.label()}: local directory does not exist; fix {source.key}.repo")
            continue
        if not source.pinned and not allow_unpinned:
            problems.append(
                f"{source.label()}: revision is not a commit hash; run `{PIN_COMMAND.format(configfile=config_path)}` "
                "(or set hub.allow_unpinned: true)"
            )
            continue
        if source.pinned and _cache_record_path(cache_dir, source, source.revision).is_file():
            continue  # verified copy in the cache: no network needed
        if offline:
            problems.append(
                f"{source.label()}: HF_HUB_OFFLINE is set and hub.cache_dir ({cache_dir}) holds no verified copy; "
                f"unset HF_HUB_OFFLINE on a host that reaches {hub_endpoint()}, copy a populated cache, "
                f"or set {source.key}.repo to a local directory"
            )
            continue
        try:
            _list_hub(source, api, timeout=timeout)
        except HubError as err:
            problems.append(str(err))
    return problems


# --- pinning -------------------------------------------------------------------------------------


def resolve_commit(source: HubSource, api: Any | None = None) -> str:
    """The commit a hub source's revision points to now."""
    return _list_hub(source, api)[0]


def pin_text(text: str, pins: dict[str, str]) -> str:
    """Rewrite ``revision:`` values in config YAML text: for each ``repo: X`` in ``pins``, the first
    ``revision:`` key at the same indentation within its mapping gets ``pins[X]``. Comments survive."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*(?:- )?)repo:\s*['\"]?([^'\"#\s]+)['\"]?", line)
        if not m or m.group(2) not in pins:
            continue
        indent = len(m.group(1))
        for j in range(max(0, i - 8), min(len(lines), i + 9)):
            r = re.match(r"^(\s*(?:- )?)revision:(\s*)([^#\n]*?)(\s*(#.*)?)$", lines[j].rstrip("\n"))
            if r and len(r.group(1)) == indent:
                lines[j] = f"{r.group(1)}revision:{r.group(2) or ' '}{pins[m.group(2)]}{r.group(4) or ''}\n"
                break
    return "".join(lines)


def _load_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``pin`` resolves every hub revision of a config to a commit; ``check`` runs the preflight;
    ``local`` writes the local stand-in repositories (:mod:`rhocluster.hub.local`)."""
    parser = argparse.ArgumentParser(prog="python -m rhocluster.hub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pin = sub.add_parser("pin", help="resolve branch/tag revisions to commit hashes")
    pin.add_argument("--configfile", type=Path, required=True)
    pin.add_argument("--write", action="store_true", help="rewrite the config file in place (comments kept)")
    check = sub.add_parser("check", help="report what would stop the fetch rules")
    check.add_argument("--configfile", type=Path, required=True)
    local = sub.add_parser(
        "local", help="write local stand-ins of the real config's repositories (rhocluster.hub.local)"
    )
    local.add_argument("root", type=Path, help="directory to write them under, e.g. resources/hub")
    local.add_argument("--force", action="store_true", help="rewrite repositories already written")
    args = parser.parse_args(argv)
    if args.command == "local":
        from rhocluster.hub.local import write_local_hub

        for repo_id, path in write_local_hub(args.root, force=args.force).items():
            print(f"{repo_id}: {path}")
        return 0
    config = _load_config(args.configfile)
    sources = [s for s in config_sources(config).values() if not s.is_local]
    if args.command == "check":
        hub = config.get("hub", {})
        problems = preflight(
            sources, hub.get("cache_dir", "resources/hf"), allow_unpinned=hub.get("allow_unpinned", False)
        )
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    pins = {}
    for s in sources:
        commit = s.revision if s.pinned else resolve_commit(s)
        pins[s.repo] = commit
        print(f"{s.key}: {s.repo} {s.revision} -> {commit}")
    if args.write:
        from rhocluster.common.atomic import save_text

        save_text(args.configfile, pin_text(args.configfile.read_text(), pins))
        print(f"pinned {len(pins)} revisions in {args.configfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
