"""The local hub (rhocluster.hub.local): the real config's repositories in their layouts and columns, read by
the real fetch code and readers, the same bytes every time."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rhocluster.hub import download as hub
from rhocluster.corpus.hf import add_row_counts, load_records, render_records, web_shard_docs
from rhocluster.corpus.tokenizer import load_tokenizer
from rhocluster.hub.local import (
    DATASETS,
    OWM,
    STAMP,
    TINYLLAMA,
    LocalHubSizes,
    repo_dir,
    write_local_hub,
)
from rhocluster.model.shape import LlamaShape
from tests.conftest import REPO

SHAPE = LlamaShape(vocab_size=800, hidden_size=32, ffn_hidden_size=64, num_layers=2, num_attention_heads=4,
                   num_query_groups=2, max_position_embeddings=256)  # fmt: skip
SIZES = LocalHubSizes(web_rows=40, web_files=3, row_group=6, hq_records=12, tokenizer_docs=80, vocab_size=800, shape=SHAPE)
REAL = yaml.safe_load((REPO / "config/rho1-tinyllama.yaml").read_text())


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    write_local_hub(root, SIZES)
    return root


def local_sources(root: Path) -> dict[str, hub.HubSource]:
    """The real config's sources with each repository replaced by its local stand-in."""
    out = {}
    for name, source in hub.config_sources(REAL).items():
        out[name] = replace(source, repo=str(repo_dir(root, source.repo, source.repo_type)), revision="local")
    return out


def test_every_real_source_fetches_from_its_stand_in_with_the_real_patterns(local_hub, tmp_path):
    sources = local_sources(local_hub)
    assert {s.repo for s in sources.values()} == {
        str(repo_dir(local_hub, r, "dataset")) for r in DATASETS
    } | {str(repo_dir(local_hub, TINYLLAMA, "model"))}
    manifests = {name: hub.fetch(source, tmp_path / "cache") for name, source in sources.items()}
    owm = add_row_counts(manifests["owm"])
    assert [f.path for f in owm.files] == [f"data/train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert sum(f.num_rows for f in owm.files) == 40
    assert all(not f.path.startswith(".") for m in manifests.values() for f in m.files), "the stamp is not listed"
    model_files = {f.path for f in manifests["base"].files}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= model_files


def test_web_files_have_openwebmaths_columns_row_groups_and_unlabelled_pages(local_hub, tmp_path):
    import pyarrow.parquet as pq

    root = repo_dir(local_hub, OWM, "dataset")
    files = sorted((root / "data").glob("*.parquet"))
    for path in files:
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.names == ["url", "text", "date", "metadata"]
        assert pf.metadata.num_row_groups >= 2
    manifest = add_row_counts(hub.fetch(local_sources(local_hub)["owm"], tmp_path))
    docs = list(web_shard_docs(manifest, 1, 0))
    assert len(docs) == 40 and all(set(d) == {"id", "text"} for d in docs)
    assert sum("The answer is" in d["text"] for d in docs) > 20, "math pages with worked answers"
    assert all(len(d["text"]) > 200 for d in docs)


def test_hq_datasets_render_through_the_real_templates(local_hub, tmp_path):
    sources = local_sources(local_hub)
    for i, spec in enumerate(REAL["data"]["hq"]["datasets"]):
        records = load_records(hub.fetch(sources[f"hq/{spec['name']}"], tmp_path), spec["format"], tmp_path / "ds")
        assert len(records) == SIZES.hq_records
        texts = render_records(records, spec["template"], spec["name"])
        assert all(t.startswith(("Problem:\n", "Question: ")) for t in texts), spec["name"]
    for name, columns in (("metamathqa", {"query", "response", "type", "original_question"}),
                          ("mathinstruct", {"source", "instruction", "output"})):  # fmt: skip
        spec = next(d for d in REAL["data"]["hq"]["datasets"] if d["name"] == name)
        path = Path(sources[f"hq/{name}"].repo) / spec["files"][0]
        data = json.loads(path.read_text())
        assert isinstance(data, list) and set(data[0]) == columns, "one JSON array of records"


def test_the_model_is_a_llama_with_a_llama2_style_tokenizer(local_hub):
    import torch
    from transformers import AutoModelForCausalLM

    model_dir = repo_dir(local_hub, TINYLLAMA, "model")
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == SHAPE.vocab_size
    assert config["max_position_embeddings"] == SHAPE.max_position_embeddings
    tok = load_tokenizer(model_dir)
    assert len(tok) == SIZES.vocab_size and tok.pad_token is None
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 258]) == ["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"]
    ids = tok("Question: what is 3 + 4? 中").input_ids
    assert ids[0] == 1 and tok.unk_token_id not in ids, "BOS first; unseen characters fall back to bytes"
    assert tok.decode(ids, skip_special_tokens=True) == "Question: what is 3 + 4? 中"
    assert not any("▁" in t[1:] for t in tok.convert_ids_to_tokens(range(259, len(tok)))), "merges inside words only"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), SHAPE.vocab_size)


def test_the_hub_is_the_same_bytes_every_time_and_kept_when_written(local_hub, tmp_path):
    again = write_local_hub(tmp_path / "again", SIZES)
    for repo_id, path in again.items():
        first = repo_dir(local_hub, repo_id, "model" if repo_id == TINYLLAMA else "dataset")
        files = sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        for rel in files:
            assert (path / rel).read_bytes() == (first / rel).read_bytes(), f"{repo_id}: {rel}"
    owm = again[OWM] / "data/train-00000-of-00003.parquet"
    mtime = owm.stat().st_mtime_ns
    write_local_hub(tmp_path / "again", SIZES)
    assert owm.stat().st_mtime_ns == mtime, "written with these sizes already: left alone"
    write_local_hub(tmp_path / "again", replace(SIZES, web_rows=41))
    assert json.loads((again[OWM] / STAMP).read_text())["web_rows"] == 41


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="vocab_size"):
        LocalHubSizes(vocab_size=900, shape=SHAPE)
    with pytest.raises(ValueError, match="web rows"):
        LocalHubSizes(web_rows=2, web_files=3, shape=SHAPE, vocab_size=800)


def test_the_command_line_writes_it(tmp_path, monkeypatch):
    import rhocluster.hub.local as localhub

    monkeypatch.setattr(localhub, "LocalHubSizes", lambda: SIZES)
    monkeypatch.setattr(localhub, "write_local_hub", lambda root, force=False: {OWM: Path(root) / "x"})
    assert hub.main(["local", str(tmp_path / "hub")]) == 0
