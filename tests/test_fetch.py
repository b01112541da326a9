"""Benchmark download: pinned manifest, verified atomic downloads, cache, retries (a local HTTP server)."""

from __future__ import annotations

import hashlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from rhocluster.evaluation.benchmarks import BENCHMARKS, load_harness_items
from rhocluster.evaluation.fetch import (
    RECORD_NAME,
    ChecksumMismatch,
    DownloadError,
    download,
    fetch_files,
    Manifest,
    load_manifest,
    main,
    mirrors_from_env,
    parse_manifest,
    preflight,
    required_paths,
    select_files,
    sha256_file,
    unpinned_notice,
)
from rhocluster.evaluation.tiny import write_tiny_benchmarks

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "config" / "rho1_benchmark_files.yaml"
HARNESS = REPO.parent / "shared" / "benchmarks" / "math-evaluation-harness-7fd4949"
needs_harness = pytest.mark.skipif(
    not HARNESS.is_dir(), reason=f"harness data not found at {HARNESS} (shared/ absent)"
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """A local HTTP server for ``files`` (url path -> bytes), counting requests.

    ``fail_first[path] = k`` answers the first k requests for path with HTTP 503;
    paths in ``truncate`` announce their full length but send half and close.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.fail_first: dict[str, int] = {}
        self.truncate: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.lstrip("/")
                server.requests.append(path)
                if server.fail_first.get(path, 0) > 0:
                    server.fail_first[path] -= 1
                    self.send_error(503, "try again")
                    return
                if path not in server.files:
                    self.send_error(404, "no such file")
                    return
                body = server.files[path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # a CI proxy must not see requests to localhost
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = FileServer()
    yield srv
    srv.close()


def _leftovers(folder: Path) -> list[str]:
    """Temporary files (atomic writes) left in ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith((".part", ".tmp")))


# --------------------------------------------------------------------------------------
# The pinned manifest
# --------------------------------------------------------------------------------------


def test_manifest_pins_the_harness_commit_and_covers_every_benchmark() -> None:
    manifest = load_manifest(MANIFEST)
    assert manifest.repository == "ZubinGou/math-evaluation-harness"
    assert manifest.commit.startswith("7fd4949") and len(manifest.commit) == 40
    for spec in manifest.files:
        assert spec.url == f"https://raw.githubusercontent.com/{manifest.repository}/{manifest.commit}/{spec.path}"
    assert sorted(s.path for s in select_files(manifest, BENCHMARKS)) == sorted(required_paths(BENCHMARKS))
    assert len(manifest.files) == 9 + 4  # nine test files, four prompt files
    unpinned = [spec.path for spec in manifest.files if spec.sha256 is None]
    assert unpinned == ["data/tabmwp/test.jsonl"]  # not in shared/: recorded on first download


@needs_harness
def test_manifest_hashes_are_the_shared_checksums() -> None:
    sums = {}
    for line in (HARNESS / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        sums[path.removeprefix("./")] = digest
    for spec in load_manifest(MANIFEST).files:
        if spec.sha256 is not None:
            assert spec.sha256 == sums[spec.path], spec.path
            assert sha256_file(HARNESS / spec.path) == spec.sha256


def test_manifest_validation_names_the_problem() -> None:
    good = {"repository": "o/r", "commit": "7fd4949", "files": [{"path": "a/b.jsonl", "url": "https://x/a", "sha256": None}]}
    assert parse_manifest(good).files[0].sha256 is None
    cases = [
        ({**good, "commit": "main"}, "commit"),
        ({**good, "files": [{"path": "a", "url": "https://x/a", "sha256": "ABC"}]}, "files/0/sha256"),
        ({**good, "files": [{"path": "a", "url": "https://x/a"}]}, "sha256"),
        ({**good, "files": [{"path": "a", "url": "ftp://x/a", "sha256": None}]}, "files/0/url"),
        ({**good, "files": [{"path": "../etc/passwd", "url": "https://x/a", "sha256": None}]}, "relative"),
        ({**good, "files": good["files"] * 2}, "listed twice"),
        ({**good, "extra": 1}, "extra"),
    ]
    for data, fragment in cases:
        with pytest.raises(ValueError, match="my.yaml") as err:
            parse_manifest(data, "my.yaml")
        assert fragment in str(err.value)


def test_required_files_per_benchmark() -> None:
    assert required_paths(["math", "sat_math"]) == [
        "data/math_oai/test.jsonl", "data/sat_math/test.jsonl",
        "prompts/cot/minerva_math.md", "prompts/cot/mmlu_stem.md",
    ]
    with pytest.raises(ValueError, match="valid names: gsm8k, svamp") as err:
        required_paths(["gsm8k", "gsm9k"])
    assert all(name in str(err.value) for name in BENCHMARKS)
    manifest = parse_manifest({"repository": "o/r", "commit": "abcdef0", "files": [
        {"path": "data/gsm8k/test.jsonl", "url": "https://x/1", "sha256": None},
    ]}, "m.yaml")
    with pytest.raises(ValueError, match=r"m.yaml lacks file\(s\) the benchmarks need: prompts/cot/gsm8k.md"):
        select_files(manifest, ["gsm8k"])


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


@needs_harness
def test_fetch_real_files_into_the_harness_layout(server: FileServer, tmp_path: Path) -> None:
    # serve copies of the shared files (and a generated TabMWP file) under the manifest's paths
    served = tmp_path / "served"
    shutil.copytree(HARNESS, served)
    write_tiny_benchmarks(tmp_path / "tiny", 5, seed=0)
    shutil.copytree(tmp_path / "tiny" / "data" / "tabmwp", served / "data" / "tabmwp")
    real = yaml.safe_load(MANIFEST.read_text())
    for entry in real["files"]:
        server.files[entry["path"]] = (served / entry["path"]).read_bytes()
        entry["url"] = server.url(entry["path"])
    manifest = parse_manifest(real, "rho1_benchmark_files.yaml")

    out, cache = tmp_path / "out", tmp_path / "cache"
    fetched = fetch_files(manifest, out, benchmarks=BENCHMARKS, cache_dir=cache, backoff_s=0)
    assert len(fetched) == 13 and all(f.downloaded for f in fetched)
    assert sorted(server.requests) == sorted(e["path"] for e in real["files"])
    for f in fetched:
        assert (out / f.path).read_bytes() == (served / f.path).read_bytes()
        assert (cache / manifest.commit / f.path).is_file()
    # the harness loader reads the fetched folder as it reads the shipped one
    assert len(load_harness_items(out, "gsm8k")) == 1319
    assert len(load_harness_items(out, "tabmwp")) == 5
    # the unpinned TabMWP hash is recorded and reported for pinning
    tab_sha = sha256_file(served / "data/tabmwp/test.jsonl")
    record = yaml.safe_load((out / RECORD_NAME).read_text())
    assert record["commit"] == manifest.commit
    assert {f["path"]: (f["sha256"], f["pinned"]) for f in record["files"]}["data/tabmwp/test.jsonl"] == (tab_sha, False)
    notice = unpinned_notice(fetched, manifest)
    assert "rho1_benchmark_files.yaml" in notice and f"sha256: {tab_sha}" in notice and notice.count("path:") == 1
    assert _leftovers(out) == [] and _leftovers(cache) == []


def test_cached_files_are_not_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    server.files = {"a.jsonl": b'{"x": 1}\n', "b.md": b"prompt\n"}
    manifest = parse_manifest({"repository": "o/r", "commit": "abcdef0", "files": [
        {"path": "data/a.jsonl", "url": server.url("a.jsonl"), "sha256": _sha(server.files["a.jsonl"])},
        {"path": "prompts/b.md", "url": server.url("b.md"), "sha256": None},
    ]})
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = fetch_files(manifest, out, cache_dir=cache, backoff_s=0)
    assert [f.downloaded for f in first] == [True, True] and len(server.requests) == 2

    # a rerun (Snakemake deleted the output folder) copies from the cache: no request
    shutil.rmtree(out)
    second = fetch_files(manifest, out, cache_dir=cache, backoff_s=0)
    assert [f.downloaded for f in second] == [False, False] and len(server.requests) == 2
    assert (out / "data/a.jsonl").read_bytes() == server.files["a.jsonl"]
    assert second[1].sha256 == _sha(b"prompt\n")  # unpinned: the first download's hash, kept

    # without a cache the output folder itself is the cache
    fetch_files(manifest, tmp_path / "plain", backoff_s=0)
    assert len(server.requests) == 4
    assert not any(f.downloaded for f in fetch_files(manifest, tmp_path / "plain", backoff_s=0))
    assert len(server.requests) == 4

    # a cached copy with the wrong bytes is replaced
    (cache / "abcdef0" / "data/a.jsonl").write_bytes(b"corrupt")
    third = fetch_files(manifest, out, cache_dir=cache, backoff_s=0)
    assert [f.downloaded for f in third] == [True, False] and server.requests[-1] == "a.jsonl"
    assert (out / "data/a.jsonl").read_bytes() == server.files["a.jsonl"]


def test_mismatch_fails_showing_both_hashes_and_the_url(server: FileServer, tmp_path: Path) -> None:
    server.files["gsm8k.jsonl"] = b"tampered\n"
    pinned = _sha(b"original\n")
    url = server.url("gsm8k.jsonl")
    dest = tmp_path / "data" / "gsm8k" / "test.jsonl"
    with pytest.raises(ChecksumMismatch) as err:
        download(url, dest, pinned, retries=3, backoff_s=0)
    message = str(err.value)
    assert url in message and pinned in message and _sha(b"tampered\n") in message
    assert len(server.requests) == 1  # a mismatch is not a transient failure
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_partial_download_leaves_no_file(server: FileServer, tmp_path: Path) -> None:
    body = b"0123456789" * 1000
    server.files["big.jsonl"] = body
    server.truncate.add("big.jsonl")
    dest = tmp_path / "data" / "big.jsonl"
    with pytest.raises(DownloadError, match="after 2 attempt") as err:
        download(server.url("big.jsonl"), dest, _sha(body), retries=2, backoff_s=0)
    assert "5000 of 10000 bytes" in str(err.value)
    assert server.requests == ["big.jsonl", "big.jsonl"]
    assert not dest.exists() and _leftovers(tmp_path) == []
    # nor does an unpinned one: a short read is caught by the announced length
    with pytest.raises(DownloadError):
        download(server.url("big.jsonl"), dest, None, retries=1, backoff_s=0)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_transient_errors_are_retried(server: FileServer, tmp_path: Path) -> None:
    server.files["f.md"] = b"prompt"
    server.fail_first["f.md"] = 2
    digest = download(server.url("f.md"), tmp_path / "f.md", _sha(b"prompt"), retries=3, backoff_s=0)
    assert digest == _sha(b"prompt") and (tmp_path / "f.md").read_bytes() == b"prompt"
    assert server.requests == ["f.md"] * 3


def test_missing_remote_file_fails_without_retry(server: FileServer, tmp_path: Path) -> None:
    url = server.url("nope.jsonl")
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download(url, tmp_path / "nope.jsonl", None, retries=3, backoff_s=0)
    assert url in str(err.value) and server.requests == ["nope.jsonl"]
    assert not (tmp_path / "nope.jsonl").exists()


def test_file_urls_and_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "src"
    write_tiny_benchmarks(source, 3, seed=1)
    entries = []
    for rel in required_paths(["gsm8k", "math"]):
        entries.append({"path": rel, "url": (source / rel).as_uri(), "sha256": sha256_file(source / rel)})
    entries[0]["sha256"] = None
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump({"repository": "o/r", "commit": "abcdef0", "files": entries}))
    main([str(manifest_path), str(tmp_path / "out"), "--benchmarks", "gsm8k,math"])
    printed = capsys.readouterr().out
    assert "4 files" in printed and "4 downloaded" in printed
    assert f"sha256: {sha256_file(source / 'data/gsm8k/test.jsonl')}" in printed
    assert len(load_harness_items(tmp_path / "out", "math")) == 3


# --------------------------------------------------------------------------------------
# Mirrors (RHO_BENCHMARK_MIRROR) and the preflight: the real files through the real fetch path, offline
# --------------------------------------------------------------------------------------

OFFLINE_BENCHMARKS = [b for b in BENCHMARKS if b != "tabmwp"]  # shared/benchmarks lacks TabMWP's test file
DEAD = "http://127.0.0.1:9"  # nothing listens there: stands in for an unreachable raw.githubusercontent.com


def _offline_manifest() -> Manifest:
    """The real manifest with its URLs moved to a dead host (the same paths and sha256)."""
    real = yaml.safe_load(MANIFEST.read_text())
    for entry in real["files"]:
        entry["url"] = f"{DEAD}/{entry['path']}"
    return parse_manifest(real, str(MANIFEST))


@needs_harness
def test_the_real_files_come_from_a_mirror_when_the_pinned_urls_fail(server: FileServer, tmp_path: Path) -> None:
    from rhocluster.evaluation.mirror import serve

    manifest = _offline_manifest()
    out, cache = tmp_path / "out", tmp_path / "cache"
    with serve(HARNESS) as url:
        assert preflight(manifest, OFFLINE_BENCHMARKS, cache, [url], timeout_s=2) == []
        fetched = fetch_files(manifest, out, benchmarks=OFFLINE_BENCHMARKS, cache_dir=cache, mirrors=[url],
                              retries=1, backoff_s=0)  # fmt: skip
    assert len(fetched) == 12 and all(f.pinned and f.downloaded for f in fetched)
    for f in fetched:
        assert f.sha256 == sha256_file(HARNESS / f.path) == sha256_file(out / f.path)
    assert len(load_harness_items(out, "mmlu_stem")) == 3018
    # cached with the pinned hash: neither a mirror nor the network is needed again
    assert preflight(manifest, OFFLINE_BENCHMARKS, cache, [], timeout_s=2) == []


def test_with_neither_mirror_nor_network_the_preflight_says_what_is_needed(tmp_path: Path) -> None:
    manifest = _offline_manifest()
    problems = preflight(manifest, ["gsm8k", "math"], tmp_path / "cache", [], timeout_s=2)
    assert len(problems) == 1
    for needed in ("data/gsm8k/test.jsonl", "prompts/cot/gsm8k.md", "data/math_oai/test.jsonl", "prompts/cot/minerva_math.md"):
        assert needed in problems[0]
    assert "RHO_BENCHMARK_MIRROR" in problems[0] and DEAD in problems[0] and manifest.commit in problems[0]
    with pytest.raises(DownloadError, match=r"data/gsm8k/test\.jsonl: no source could supply it"):
        fetch_files(manifest, tmp_path / "out", benchmarks=["gsm8k"], cache_dir=tmp_path / "cache", retries=1, backoff_s=0)
    assert not (tmp_path / "out").exists()


def test_a_benchmark_file_with_a_wrong_hash_stops_and_writes_nothing(server: FileServer, tmp_path: Path) -> None:
    good, bad = b"prompt\n", b"tampered\n"
    server.files = {"data/gsm8k/test.jsonl": b'{"x": 1}\n', "prompts/cot/gsm8k.md": bad}
    manifest = parse_manifest({"repository": "o/r", "commit": "abcdef0", "files": [
        {"path": "data/gsm8k/test.jsonl", "url": f"{DEAD}/a", "sha256": _sha(b'{"x": 1}\n')},
        {"path": "prompts/cot/gsm8k.md", "url": f"{DEAD}/b", "sha256": _sha(good)},
    ]}, "m.yaml")  # fmt: skip
    out, cache = tmp_path / "out", tmp_path / "cache"
    mirror = server.url("").rstrip("/")
    with pytest.raises(ChecksumMismatch, match=r"prompts/cot/gsm8k\.md: sha256 mismatch") as err:
        fetch_files(manifest, out, benchmarks=["gsm8k"], cache_dir=cache, mirrors=[mirror], retries=1, backoff_s=0)
    assert _sha(bad) in str(err.value) and _sha(good) in str(err.value)
    assert not out.exists(), "the output folder appears whole or not at all"
    assert not (cache / "abcdef0/prompts/cot/gsm8k.md").exists() and _leftovers(tmp_path) == []
    assert server.requests.count("prompts/cot/gsm8k.md") == 1, "a wrong hash is not retried elsewhere"


def test_mirrors_come_from_the_environment() -> None:
    assert mirrors_from_env({}) == []
    assert mirrors_from_env({"RHO_BENCHMARK_MIRROR": "http://a:1 file:///m"}) == ["http://a:1", "file:///m"]
    with pytest.raises(ValueError, match="RHO_BENCHMARK_MIRROR"):
        mirrors_from_env({"RHO_BENCHMARK_MIRROR": "/local/dir"})
