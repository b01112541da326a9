"""Hub fetching, manifests and the hub data path (rhocluster.hub.download, rhocluster.corpus.hf), offline.

Local directories built in tmp_path stand in for hub repositories (the code accepts a directory in
place of a hub id); the hub-only branch (commit resolution, checksums against the hub's metadata, the
per-commit cache record, offline mode) runs against a fake ``HfApi`` and a fake ``hf_hub_download``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rhocluster.hub import download as hub
from rhocluster.corpus.hf import (
    add_row_counts,
    build_hq_mixture,
    import_tokenizer,
    render_records,
    shard_range,
    web_shard_docs,
    write_web_shard,
)
from rhocluster.common.jsonl import read_jsonl
from rhocluster.hub.download import HubError, HubSource, fetch, load_manifest, materialize, pin_text, preflight
from tests.conftest import REPO, copy_workflow, run_snakemake
from tests.hf_fixtures import TINY_SHAPE, make_hq_datasets, make_tiny_llama, make_web_dataset

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a made-up commit of the fake hub below


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub_fixtures")
    hq = make_hq_datasets(root / "hq")
    return {
        "owm": make_web_dataset(root / "owm"),
        "numina": hq["numina"],
        "metamath": hq["metamath"],
        "model": make_tiny_llama(root / "model"),
    }


def owm_source(fixtures, **kw) -> HubSource:
    return HubSource(str(fixtures["owm"]), "local", "dataset", files=("data/*.parquet",), key="data.web", **kw)


# --- local directories in place of hub repositories ------------------------------------------------


def test_local_fetch_lists_hashes_and_counts_rows(fixtures, tmp_path):
    manifest = add_row_counts(fetch(owm_source(fixtures), tmp_path / "cache"))
    assert [f.path for f in manifest.files] == ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    for f in manifest.files:
        assert f.sha256 == hashlib.sha256(Path(f.local_path).read_bytes()).hexdigest()
    assert [f.num_rows for f in manifest.files] == [23, 17]
    assert manifest.commit.startswith("local-") and manifest.pinned
    again = fetch(owm_source(fixtures), tmp_path / "cache")
    assert again.commit == manifest.commit, "the listing hash is the local 'commit': stable"
    manifest.save(tmp_path / "m.json")
    assert load_manifest(tmp_path / "m.json").files[1].num_rows == 17


def test_pinned_sha256_must_match(fixtures, tmp_path):
    good = fetch(owm_source(fixtures), tmp_path).files[0]
    fetch(owm_source(fixtures, sha256={good.path: good.sha256}), tmp_path)
    with pytest.raises(HubError, match=r"data\.web\.sha256 pins"):
        fetch(owm_source(fixtures, sha256={good.path: "0" * 64}), tmp_path)


def test_patterns_that_match_nothing_name_the_key(fixtures, tmp_path):
    with pytest.raises(HubError, match=r"fix data\.web\.files"):
        fetch(HubSource(str(fixtures["owm"]), "local", "dataset", files=("*.arrow",), key="data.web"), tmp_path)


def test_missing_cache_file_is_reported(fixtures, tmp_path):
    manifest = fetch(owm_source(fixtures), tmp_path)
    manifest.files[0].local_path = str(tmp_path / "gone.parquet")
    manifest.save(tmp_path / "m.json")
    with pytest.raises(HubError, match="missing or changed"):
        load_manifest(tmp_path / "m.json")


# --- documents -----------------------------------------------------------------------------------


def test_web_shards_partition_the_rows_exactly_once(fixtures, tmp_path):
    manifest = add_row_counts(fetch(owm_source(fixtures), tmp_path))
    n_shards, seen = 7, []
    for shard in range(n_shards):
        docs = list(web_shard_docs(manifest, n_shards, shard))
        rows = [int(d["id"].rsplit(":", 1)[1]) for d in docs]
        start, stop = shard_range(40, n_shards, shard)
        assert rows == list(range(start, stop)), "contiguous rows"
        assert all(set(d) == {"id", "text"} and d["text"] for d in docs), "no spans: unlabelled documents"
        seen += rows
    assert seen == list(range(40))
    assert write_web_shard(manifest, n_shards, 0, tmp_path / "s.jsonl") == len(list(read_jsonl(tmp_path / "s.jsonl")))
    with pytest.raises(ValueError, match="text_field"):
        next(web_shard_docs(manifest, 2, 0, text_field="content"))


def test_hq_mixture_renders_shuffles_and_deals(fixtures, tmp_path):
    specs = [
        {"name": "numina", "format": "parquet", "template": "Problem:\n{problem}\nSolution:\n{solution}"},
        {"name": "metamath", "format": "json", "template": "Question: {query}\nAnswer: {response}", "max_records": 10},
    ]
    manifests = [
        fetch(HubSource(str(fixtures["numina"]), "local", "dataset", ("data/*.parquet",)), tmp_path),
        fetch(HubSource(str(fixtures["metamath"]), "local", "dataset", ("*.json",)), tmp_path),
    ]
    outs = [tmp_path / "a" / f"{i:05d}.jsonl" for i in range(3)]
    counts = build_hq_mixture(specs, manifests, outs, seed=5, cache_dir=tmp_path / "ds")
    assert counts == {"numina": 30, "metamath": 10}
    docs = [d for p in outs for d in read_jsonl(p)]
    assert len(docs) == 40 and len({d["id"] for d in docs}) == 40
    assert {len(list(read_jsonl(p))) for p in outs} <= {13, 14}
    numina0 = next(d for d in docs if d["id"] == "numina:0")
    assert numina0["text"] == "Problem:\nCompute 0 + 1.\nSolution:\nWe add: 0 + 1 = 1. The answer is 1."
    first = [d["id"] for d in read_jsonl(outs[0])]
    assert first[:5] != sorted(first[:5]) or first[0].split(":")[0] != first[-1].split(":")[0], "sources are mixed"
    build_hq_mixture(specs, manifests, [tmp_path / "b" / p.name for p in outs], seed=5, cache_dir=tmp_path / "ds")
    assert all(p.read_bytes() == (tmp_path / "b" / p.name).read_bytes() for p in outs), "seeded: same bytes"
    with pytest.raises(ValueError, match=r"template fields \['question'\]"):
        render_records([{"query": "q"}], "Q: {question}", "bad")
    # Held out: the first documents of the same shuffle go to their own file, the rest are dealt as before.
    held_outs = [tmp_path / "c" / p.name for p in outs]
    build_hq_mixture(specs, manifests, held_outs, seed=5, cache_dir=tmp_path / "ds",
                     heldout_path=tmp_path / "c" / "heldout.jsonl", heldout_docs=4)  # fmt: skip
    held = [d["id"] for d in read_jsonl(tmp_path / "c" / "heldout.jsonl")]
    trained = [d["id"] for p in held_outs for d in read_jsonl(p)]
    assert len(held) == 4 and len(trained) == 36 and not set(held) & set(trained)
    assert set(held) | set(trained) == {d["id"] for d in docs}
    with pytest.raises(ValueError, match="heldout_docs=40 would leave none"):
        build_hq_mixture(specs, manifests, held_outs, seed=5, cache_dir=tmp_path / "ds",
                         heldout_path=tmp_path / "c" / "h.jsonl", heldout_docs=40)  # fmt: skip


def test_llama_tokenizer_imports_and_tokenizes_unlabelled_shards(fixtures, tmp_path):
    from rhocluster.data.shards import Shard
    from rhocluster.data.tokenize import tokenize_shard

    n = import_tokenizer(fixtures["model"], tmp_path / "tokenizer", TINY_SHAPE.vocab_size)
    assert n <= TINY_SHAPE.vocab_size and (tmp_path / "tokenizer/tokenizer.json").exists()
    with pytest.raises(ValueError, match="model.vocab_size"):
        import_tokenizer(fixtures["model"], tmp_path / "small", 100)
    manifest = add_row_counts(fetch(owm_source(fixtures), tmp_path))
    write_web_shard(manifest, 1, 0, tmp_path / "web.jsonl")
    meta = tokenize_shard(tmp_path / "web.jsonl", tmp_path / "tokenizer", tmp_path / "shards/00000", 33, TINY_SHAPE.vocab_size)
    assert meta.has_labels is False and meta.n_documents == 40
    tokens = Shard(tmp_path / "shards/00000").windows()
    assert tokens.shape[1] == 33 and tokens.max() < n
    flat = tokens.ravel()
    specials = flat[(flat == 1) | (flat == 2)]
    assert not np.any(specials[1:] == specials[:-1]), "documents framed <s> ... </s>"


def test_model_directory_materializes_and_imports(fixtures, tmp_path):
    from rhocluster.training.jobs import import_hf_base

    source = HubSource(str(fixtures["model"]), "local", "model", ("config.json", "*.safetensors", "tokenizer*"))
    manifest = fetch(source, tmp_path / "cache")
    materialize(manifest, tmp_path / "base")
    names = sorted(p.name for p in (tmp_path / "base").iterdir())
    assert names == ["config.json", "fetch.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    record = json.loads((tmp_path / "base/fetch.json").read_text())
    assert all(Path(f["local_path"]).parent == (tmp_path / "base").resolve() for f in record["files"])
    import_hf_base(tmp_path / "base", TINY_SHAPE.to_dict(), tmp_path / "mcore", tmp_path / "log.jsonl", tmp_path / "s.json")
    assert (tmp_path / "mcore").is_dir()


# --- the hub branch, against a fake hub ----------------------------------------------------------


class FakeHub:
    """``HfApi.repo_info`` over a local directory: every *.parquet is an LFS file, the rest git blobs."""

    def __init__(self, root: Path, commit: str = COMMIT, fail: BaseException | None = None):
        self.root, self.commit, self.fail, self.calls = root, commit, fail, 0

    def repo_info(self, repo_id, revision=None, repo_type=None, files_metadata=False, timeout=None):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        siblings = []
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                sha256, blob = hub.file_hashes(p)
                lfs = SimpleNamespace(size=p.stat().st_size, sha256=sha256) if p.suffix == ".parquet" else None
                siblings.append(SimpleNamespace(rfilename=p.relative_to(self.root).as_posix(), size=p.stat().st_size,
                                                blob_id=None if lfs else blob, lfs=lfs))
        return SimpleNamespace(sha=self.commit, siblings=siblings)


@pytest.fixture
def fake_download(monkeypatch):
    """``hf_hub_download`` that copies from the registered remote directory into the cache."""
    remotes: dict[str, Path] = {}

    def download(repo_id, filename, *, repo_type=None, revision=None, cache_dir=None, local_files_only=False):
        dest = Path(cache_dir) / repo_id.replace("/", "--") / revision / filename
        if not dest.exists():
            if local_files_only:
                raise FileNotFoundError(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(remotes[repo_id] / filename, dest)
        return str(dest)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return remotes


def test_hub_fetch_verifies_and_reuses_the_commit_record(fixtures, tmp_path, fake_download):
    fake_download["org/owm"] = fixtures["owm"]
    api = FakeHub(fixtures["owm"])
    source = HubSource("org/owm", COMMIT, "dataset", ("data/*.parquet", "README.md"), key="data.web")
    manifest = fetch(source, tmp_path, api=api, offline=False)
    assert manifest.commit == COMMIT and len(manifest.files) == 3 and api.calls == 1
    # A pinned commit with a verified record needs no hub: offline, or with the API failing.
    broken = FakeHub(fixtures["owm"], fail=ConnectionError("no network"))
    again = fetch(source, tmp_path, api=broken, offline=True)
    assert [f.sha256 for f in again.files] == [f.sha256 for f in manifest.files] and broken.calls == 0
    assert preflight([source], tmp_path, offline=True, api=broken) == []


def test_hub_fetch_rejects_a_corrupt_download(fixtures, tmp_path, fake_download):
    remote = tmp_path / "remote"
    shutil.copytree(fixtures["owm"], remote)
    fake_download["org/owm"] = remote
    api = FakeHub(remote)
    source = HubSource("org/owm", COMMIT, "dataset", ("data/*.parquet",))
    listing = api.repo_info("org/owm")  # what the hub says ...
    api.repo_info = lambda *a, **k: listing
    target = remote / "data/train-00001-of-00002.parquet"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")  # ... and what arrives differs
    with pytest.raises(HubError, match="failed verification"):
        fetch(source, tmp_path / "cache", api=api, offline=False)
    assert not list((tmp_path / "cache").rglob("train-00001-of-00002.parquet")), "the corrupt file left the cache"


def test_unpinned_revisions_and_offline_mode_fail_with_what_to_set(fixtures, tmp_path, fake_download):
    api = FakeHub(fixtures["owm"])
    branch = HubSource("org/owm", "main", "dataset", key="data.web")
    with pytest.raises(HubError, match="rhocluster.hub pin"):
        fetch(branch, tmp_path, api=api, offline=False)
    fake_download["org/owm"] = fixtures["owm"]
    assert fetch(branch, tmp_path, api=api, offline=False, allow_unpinned=True).commit == COMMIT
    pinned = HubSource("org/other", COMMIT, "dataset", key="data.web")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        fetch(pinned, tmp_path / "empty", api=api, offline=True)


def test_preflight_names_every_problem(fixtures, tmp_path):
    sources = [
        HubSource("org/a", "main", "dataset", key="data.web"),
        HubSource("org/b", COMMIT, "model", key="base.hub"),
        HubSource(str(tmp_path / "nowhere"), "local", "dataset", key="data.hq.datasets[0]"),
    ]
    offline = preflight(sources, tmp_path, offline=True)
    assert len(offline) == 3
    assert "data.web" in offline[0] and "pin" in offline[0]
    assert "base.hub" in offline[1] and "HF_HUB_OFFLINE" in offline[1]
    assert "data.hq.datasets[0].repo" in offline[2]
    down = preflight(sources[1:2], tmp_path, offline=False, api=FakeHub(tmp_path, fail=ConnectionError("refused")))
    assert len(down) == 1 and "cannot reach the Hugging Face hub" in down[0] and "base.hub.repo" in down[0]


def test_pin_rewrites_revisions_and_keeps_comments(tmp_path, monkeypatch):
    text = (REPO / "config/rho1-tinyllama.yaml").read_text()
    config = yaml.safe_load(text)
    sources = hub.config_sources(config)
    assert set(sources) == {"owm", "hq/numinamath_cot", "hq/metamathqa", "hq/orca_math", "hq/mathinstruct", "base"}
    assert all(not s.pinned for s in sources.values()), "the shipped config names branches, not invented hashes"
    fake = {s.repo: hashlib.sha1(s.repo.encode()).hexdigest() for s in sources.values()}
    path = tmp_path / "real.yaml"
    path.write_text(text)
    monkeypatch.setattr(hub, "resolve_commit", lambda s, api=None: fake[s.repo])
    assert hub.main(["pin", "--configfile", str(path), "--write"]) == 0
    pinned = path.read_text()
    assert pinned.count("# pin: see REVISIONS above") == text.count("# pin: see REVISIONS above")
    after = hub.config_sources(yaml.safe_load(pinned))
    assert {s.repo: s.revision for s in after.values()} == fake
    assert pin_text(pinned, fake) == pinned, "idempotent"
    assert [line for line in pinned.splitlines() if "revision" not in line] == [
        line for line in text.splitlines() if "revision" not in line
    ]


# --- the rules ------------------------------------------------------------------------------------


def hub_config(fixtures: dict[str, Path], run: str = "hubtest") -> dict:
    """A complete config whose hub sources are the local fixtures, on the tiny default's settings."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["run"] = run
    config["data"] = {
        "source": "hf",
        "seq_len": 32,
        "web": {"repo": str(fixtures["owm"]), "revision": "local", "files": ["data/*.parquet"], "num_shards": 3,
                "approx_tokens": 2000},
        "hq": {
            "num_shards": 2,
            "datasets": [
                {"name": "numina", "repo": str(fixtures["numina"]), "revision": "local", "files": ["data/*.parquet"],
                 "template": "Problem:\n{problem}\nSolution:\n{solution}", "approx_tokens": 1500},
                {"name": "metamath", "repo": str(fixtures["metamath"]), "revision": "local", "files": ["*.json"],
                 "format": "json", "template": "Question: {query}\nAnswer: {response}", "approx_tokens": 600},
            ],
        },
    }
    config["tokenizer"] = {"source": "hf"}
    config["model"] = TINY_SHAPE.to_dict()
    config["base"] = {
        "source": "hf",
        "hf_dir": "resources/models/tiny",
        "hub": {"repo": str(fixtures["model"]), "revision": "local", "files": ["config.json", "*.safetensors", "tokenizer*"]},
        "training": config["base"]["training"],
    }
    return config


@pytest.mark.slow
def test_rules_fetch_prepare_and_tokenize_from_the_hub_layout(fixtures, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    (work / "config/hub.yaml").write_text(yaml.safe_dump(hub_config(fixtures)))
    r = "results/hubtest"
    shards = [f"{r}/shards/{split}/{s:05d}.json" for split, n in (("web", 3), ("hq", 2)) for s in range(n)]
    targets = [*shards, f"{r}/models/base/mcore"]
    proc = run_snakemake(work, *targets, "--cores", "2", "--configfile", "config/hub.yaml", timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    owm = json.loads((work / r / "downloads/owm.json").read_text())
    assert owm["commit"].startswith("local-") and sum(f["num_rows"] for f in owm["files"]) == 40
    docs = [d for s in range(3) for d in read_jsonl(work / r / f"corpus/web/{s:05d}.jsonl")]
    assert len(docs) == 40
    for split, n in (("web", 3), ("hq", 2)):
        for s in range(n):
            meta = json.loads((work / r / f"shards/{split}/{s:05d}.json").read_text())
            assert meta["has_labels"] is False and meta["seq_len"] == 33 and meta["n_windows"] > 0
    assert json.loads((work / "resources/models/tiny/fetch.json").read_text())["repo_type"] == "model"
    assert (work / r / "tokenizer/tokenizer.json").exists()
    plan = run_snakemake(work, "plan", "--cores", "1", "--configfile", "config/hub.yaml", timeout=300)
    assert plan.returncode == 0, plan.stdout[-4000:]
    planned = json.loads((work / r / "plan.json").read_text())
    assert planned["token_sources"]["web"] == "measured on 3 of 3 shards"


def test_unpinned_or_offline_hub_sources_stop_the_run_before_any_job(fixtures, tmp_path, monkeypatch):
    work = copy_workflow(tmp_path / "wf")
    config = hub_config(fixtures)
    config["data"]["web"].update(repo="open-web-math/open-web-math", revision="main")
    config["base"]["hub"].update(repo="TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T", revision=COMMIT)
    (work / "config/hub.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the network
    proc = run_snakemake(work, "--cores", "1", "--configfile", "config/hub.yaml", timeout=300)
    assert proc.returncode != 0
    assert "Stopped before starting any job" in proc.stdout, proc.stdout[-3000:]
    assert "data.web" in proc.stdout and "rhocluster.hub pin" in proc.stdout
    assert "base.hub" in proc.stdout and "HF_HUB_OFFLINE" in proc.stdout
    assert not (work / "results").exists() and not (work / "resources").exists()


# --- bad input on the real path: each stops naming the file and the problem, writing nothing -------------


def _web_file(root: Path, columns: dict) -> HubSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table(columns), root / "data/train-00000-of-00001.parquet", row_group_size=2)
    return HubSource(str(root), "local", "dataset", files=("data/*.parquet",), key="data.web")


@pytest.mark.parametrize(
    "texts, problem",
    [(["a page", "another", "", "more"], "empty 'text'"), (["a page", None, "x", "y"], "null 'text'"),
     (["a page", "   \n", "x", "y"], "empty 'text'")],  # fmt: skip
)
def test_a_web_file_with_an_empty_or_null_text_stops_naming_the_row(tmp_path, texts, problem):
    source = _web_file(tmp_path / "owm", {"url": ["u"] * 4, "text": texts})
    manifest = add_row_counts(fetch(source, tmp_path / "cache"))
    out = tmp_path / "corpus/web/00000.jsonl"
    with pytest.raises(ValueError, match=problem) as err:
        write_web_shard(manifest, 1, 0, out)
    row = next(i for i, t in enumerate(texts) if not (isinstance(t, str) and t.strip()))
    assert "train-00000-of-00001.parquet" in str(err.value) and f"row {row} of the file" in str(err.value)
    assert not out.exists() and not list(out.parent.glob("*")), "nothing half-written"


def test_a_web_file_with_a_non_string_text_column_or_none_stops(tmp_path):
    numbers = add_row_counts(fetch(_web_file(tmp_path / "a", {"url": ["u"] * 3, "text": [1, 2, 3]}), tmp_path / "c"))
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.parquet.*column 'text' holds int64, not text"):
        write_web_shard(numbers, 1, 0, tmp_path / "a.jsonl")
    missing = add_row_counts(fetch(_web_file(tmp_path / "b", {"url": ["u"] * 3, "content": ["x"] * 3}), tmp_path / "c"))
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.parquet.*no column 'text'.*fix data\.web\.text_field"):
        write_web_shard(missing, 1, 0, tmp_path / "b.jsonl")
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()


@pytest.mark.parametrize(
    "body, starts", [('{"query": "q", "response": "r"}\n{"query": "q2", "response": "r2"}\n', "{"), ('"text"', '"')]
)
def test_an_hq_json_that_is_not_an_array_stops_naming_the_file(tmp_path, body, starts):
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/MetaMathQA-395K.json").write_text(body)
    spec = {"name": "metamathqa", "format": "json", "template": "Question: {query}\nAnswer: {response}"}
    manifest = fetch(HubSource(str(tmp_path / "mm"), "local", "dataset", ("*.json",)), tmp_path / "cache")
    outs = [tmp_path / "hq" / f"{i:05d}.jsonl" for i in range(2)]
    with pytest.raises(ValueError, match=rf"MetaMathQA-395K\.json: not a JSON array of records \(it starts with '{starts}'"):
        build_hq_mixture([spec], [manifest], outs, seed=0, cache_dir=tmp_path / "ds")
    assert not (tmp_path / "hq").exists(), "nothing half-written"


def test_a_model_directory_without_a_tokenizer_stops_before_anything_is_written(fixtures, tmp_path):
    from rhocluster.hub.jobs import check_model_files, fetch_model

    model = tmp_path / "model"
    shutil.copytree(fixtures["model"], model)
    for p in model.glob("tokenizer*"):
        p.unlink()
    params = SimpleNamespace(
        spec={"repo": str(model), "revision": "local", "files": ["config.json", "*.safetensors", "tokenizer*"]},
        repo_type="model", key="base.hub", cache_dir=str(tmp_path / "cache"), allow_unpinned=False,
    )  # fmt: skip
    out = tmp_path / "resources/models/base"
    with pytest.raises(HubError, match=r"base\.hub: model .*model lacks a tokenizer \(tokenizer\.json or tokenizer\.model\)"):
        fetch_model(params, out, tmp_path / "log.txt", workers=1)
    assert not out.exists() and not list(out.parent.glob(".*")), "no half-materialised model directory"
    # the import of the tokenizer from such a directory says the same
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        import_tokenizer(model, tmp_path / "tok", 512)
    assert not (tmp_path / "tok").exists()
    with pytest.raises(HubError, match=r"lacks config\.json"):
        manifest = fetch(HubSource(str(model), "local", "model", ("*.safetensors",)), tmp_path / "cache")
        check_model_files(manifest)


def test_a_local_directory_not_written_yet_is_reported_missing_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """resources/hub/datasets/org/name (the smoke config's sources before `python -m rhocluster.hub local`)
    is a path, not a hub id: the preflight says the directory is missing, with no pin or hub advice."""
    monkeypatch.chdir(tmp_path)
    source = HubSource("resources/hub/datasets/open-web-math/open-web-math", "local", "dataset", key="data.web")
    assert source.is_local and source.pinned
    assert not HubSource("open-web-math/open-web-math", "main", "dataset").is_local
    problems = preflight([source], tmp_path, offline=True)
    assert len(problems) == 1 and "local directory does not exist; fix data.web.repo" in problems[0]
