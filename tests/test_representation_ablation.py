"""bench/representation_ablation.py on fabricated ablation runs: held-out shards written with the package's
writer, per-document loss files, and each run's tables/heldout.csv written by the workflow's own
write_heldout_tables from them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rhocluster.reporting.heldout_tables import PROBLEMS, TOKEN, TYPE, WEB_ALL, write_heldout_tables
from rhocluster.reporting.reproduce import parse_tables
from tests.test_heldout_tables import EOS, make_shard

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("representation_ablation", REPO / "bench" / "representation_ablation.py")
ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation)

SEEDS = 3
# run -> (label, shift of its cluster losses); final/predict's files are middle/read's own bytes
RUNS = {
    "r-middle-read": ("middle/read", 0.0),
    "r-final-read": ("final/read", -0.6),
    "r-final-predict": ("final/predict", 0.0),
    "r-middle-predict": ("middle/predict", 0.4),
}
SPLITS = ("heldout_web", "heldout_hq")


def _model(i: int, row: str = "cluster") -> str:
    return row if i == 0 else f"{row}.s{i}"


def _losses(run_dir: Path, models: list[str]) -> dict[str, dict[str, list[str]]]:
    return {m: {s: [str(run_dir / "heldout" / m / s / "00000.loss.npy")] for s in SPLITS} for m in models}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Four runs that scored the same held-out shards: identical ct losses, cluster losses per run."""
    rng = np.random.default_rng(5)
    first = tmp_path / "r-middle-read"
    shapes = {}
    for split, labelled, n in (("heldout_web", True, 40), ("heldout_hq", False, 30)):
        tokens, _ = make_shard(first / "shards" / split / "00000", n, rng, labelled=labelled)
        shapes[split] = tokens.shape
    (first / "tokenizer").mkdir()
    (first / "tokenizer" / "tokenizer.json").write_text('{"stand-in": true}\n')  # compared byte by byte
    truth = {s: rng.random(shape) * 3 for s, shape in shapes.items()}  # what every model finds hard

    def save(path: Path, split: str, shift: float, noise_rng: np.random.Generator) -> None:
        loss = (truth[split] + shift + noise_rng.normal(0, 0.3, shapes[split])).astype(np.float16)
        loss[:, 0] = np.nan
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, loss)

    for run, (label, shift) in RUNS.items():
        run_dir = tmp_path / run
        if run_dir != first:
            for part in ("shards", "tokenizer"):
                shutil.copytree(first / part, run_dir / part)
        for i in range(SEEDS):
            for split in SPLITS:
                ct = run_dir / "heldout" / _model(i, "ct") / split / "00000.loss.npy"
                if run_dir == first:
                    save(ct, split, 0.5, np.random.default_rng(100 + i))
                else:
                    ct.parent.mkdir(parents=True)
                    shutil.copy(first / ct.relative_to(run_dir), ct)
                cluster = run_dir / "heldout" / _model(i) / split / "00000.loss.npy"
                if label == "final/predict":  # the same files as middle/read: every difference is 0
                    cluster.parent.mkdir(parents=True)
                    shutil.copy(first / cluster.relative_to(run_dir), cluster)
                else:
                    save(cluster, split, 1.0 + shift, np.random.default_rng(1000 * i + len(run)))
        reps = {row: [_model(i, row) for i in range(SEEDS)] for row in ("ct", "cluster")}
        shards = {s: [str(run_dir / "shards" / s / "00000")] for s in SPLITS}
        out = {k: run_dir / "tables" / f"heldout.{k}" for k in ("md", "differences_csv")}
        out["losses_csv"] = run_dir / "tables" / "heldout.csv"
        write_heldout_tables(shards, _losses(run_dir, reps["ct"] + reps["cluster"]), reps, [], EOS, 300, 1234, run, out)
        (run_dir / "tables" / "labels.csv").write_text(
            "variant,footer,junk,math,navigation,prose,all\n"
            f"ct,100.0,100.0,100.0,100.0,100.0,100.0\ncluster,50.0,54.0,{60 + len(run) / 10:.1f},53.0,40.0,60.0\n"
        )
    return tmp_path


ARGS = [(run, label) for run, (label, _) in RUNS.items()]


def test_the_block_is_the_runs_tables_and_their_paired_differences(results: Path) -> None:
    md = ablation.ablation_markdown(results, ARGS, EOS, 400, 1234)
    tables = parse_tables(md)
    token = tables["Held-out loss / Mean token loss"]
    assert list(token.rows) == ["ct", *(f"cluster {label}" for _, label in ARGS)]
    # every loss cell is the run's own heldout.csv row
    for run, label in ARGS:
        own = pd.read_csv(results / run / "tables" / "heldout.csv")
        for metric, table in ((TOKEN, token), (TYPE, tables["Held-out loss / Type-balanced mean loss"])):
            for _, r in own[(own.row == "cluster") & (own.metric == metric)].iterrows():
                cell = table.rows[f"cluster {label}"][table.columns.index(r.column)]
                assert cell.text == f"{r.estimate:.3f} [{r.low:.3f}, {r.high:.3f}]"
    kept = tables["Kept fraction"]
    assert kept.rows["cluster final/read"][kept.columns.index("math")].text == "61.2"  # from that run's labels.csv

    pairs = tables["Paired differences between the representations / Mean token loss"]
    assert list(pairs.rows) == [
        "final layer instead of middle: final/read − middle/read",
        "final layer instead of middle and predict position instead of read: final/predict − middle/read",
        "predict position instead of read: middle/predict − middle/read",
        "predict position instead of read: final/predict − final/read",
        "middle layer instead of final and predict position instead of read: middle/predict − final/read",
        "middle layer instead of final: middle/predict − final/predict",
    ]
    assert len(tables["Paired differences between the representations / Type-balanced mean loss"].rows) == 6
    # point estimate: seed i against seed i, the mean over seeds of the difference of plain means
    web = pairs.columns.index(WEB_ALL)
    want = np.mean([
        np.load(results / "r-final-read" / "heldout" / _model(i) / "heldout_web" / "00000.loss.npy")[:, 1:].astype(np.float64).mean()
        - np.load(results / "r-middle-read" / "heldout" / _model(i) / "heldout_web" / "00000.loss.npy")[:, 1:].astype(np.float64).mean()
        for i in range(SEEDS)
    ])  # fmt: skip
    cell = pairs.rows["final layer instead of middle: final/read − middle/read"][web]
    assert cell.value == pytest.approx(want, abs=5e-4) and cell.high < 0
    same = pairs.rows["final layer instead of middle and predict position instead of read: final/predict − middle/read"]
    assert all(c.value == 0 and c.low == 0 and c.high == 0 for c in same)
    # the sentences are read off the pair tables
    assert (
        "- *final layer instead of middle* (final/read − middle/read): mean token loss lower on every column; "
        "type-balanced mean loss lower on every column." in md
    )
    assert "- *predict position instead of read* (middle/predict − middle/read): mean token loss higher on every column" in md
    assert "(final/predict − middle/read): no significant difference in mean token loss on any column" in md
    assert "`ct`'s held-out loss files (every seed and split: 6 files) are byte-identical in all 4 runs" in md
    assert token.columns[-1] == "seeds" and PROBLEMS in token.columns


def test_runs_that_scored_other_held_out_text_are_refused(results: Path) -> None:
    shard = results / "r-final-predict" / "shards" / "heldout_hq" / "00000.bin"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="r-final-predict/shards/heldout_hq/00000.bin differs from"):
        ablation.ablation_markdown(results, ARGS, EOS, 50, 1)
    shard.unlink()
    with pytest.raises(ValueError, match="its held-out shards"):
        ablation.ablation_markdown(results, ARGS, EOS, 50, 1)
    (results / "r-middle-predict" / "tokenizer" / "tokenizer.json").write_text("{}\n")
    with pytest.raises(ValueError, match="r-middle-predict/tokenizer/tokenizer.json differs"):
        ablation.ablation_markdown(results, ARGS[:1] + ARGS[3:], EOS, 50, 1)


def test_a_table_not_made_from_the_loss_files_is_refused(results: Path) -> None:
    path = results / "r-middle-predict" / "heldout" / "cluster.s2" / "heldout_web" / "00000.loss.npy"
    loss = np.load(path)
    np.save(path, (loss.astype(np.float32) + 0.1).astype(np.float16))
    with pytest.raises(ValueError, match="run r-middle-predict: its held-out loss files give cluster .* the table is not from these files"):
        ablation.ablation_markdown(results, ARGS, EOS, 50, 1)


def test_a_changed_ct_is_stated(results: Path) -> None:
    path = results / "r-final-read" / "heldout" / "ct.s1" / "heldout_hq" / "00000.loss.npy"
    np.save(path, np.load(path) + np.float16(0.5))
    md = ablation.ablation_markdown(results, ARGS, EOS, 50, 1)
    assert "`ct`'s held-out loss files differ from run `r-middle-read`'s in run(s) `r-final-read`." in md


def test_the_page_is_rewritten_between_its_markers(results: Path, tmp_path: Path, monkeypatch) -> None:
    """The command line: the block replaces the span between the page's markers, bytes outside are kept,
    and the command that regenerates it is named; a second run leaves the page alone."""
    page = tmp_path / "page.md"
    before, after = "# Page\n\nHand-written text.\n\n", "\n\nMore text, no final newline"
    page.write_text(before + ablation.START + "\nold\n" + ablation.END + after)
    monkeypatch.setattr(ablation, "_eos_id", lambda path: EOS)
    argv = [f"{run}={label}" for run, label in ARGS] + ["--results", str(results), "--resamples", "100", "--page", str(page)]
    ablation.main(argv)
    text = page.read_text()
    assert text.startswith(before + ablation.START + "\n<!-- written by bench/representation_ablation.py")
    assert text.endswith(ablation.END + after) and "old" not in text
    assert "Regenerate with `PYTHONPATH=$PWD python bench/representation_ablation.py r-middle-read=middle/read " in text
    assert f"--page {page}`" in text
    ablation.main(argv)
    assert page.read_text() == text
    with pytest.raises(SystemExit):
        ablation.main(["no-label", "--results", str(results)])
