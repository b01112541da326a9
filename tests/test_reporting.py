"""Tables, README block and figures regenerate from fixture workflow files (generated here, in tmp_path)."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rhocluster.reporting import figures, readme, tables
from rhocluster.reporting.published import PUBLISHED
from rhocluster.reporting.reproduce import parse_tables
from rhocluster.reporting.stats import AVG

MODELS = ["base", "reference", "ct", "rho1", "cluster"]
VARIANTS = ["ct", "rho1", "cluster"]
BENCHMARKS = ["math", "gsm8k", "svamp"]  # deliberately not in the seed's order
N = 20
PRE = "# Project\r\n\nIntro with ünïcode, trailing spaces   \n\n<!-- results-table:start -->"
POST = "<!-- results-table:end -->\n\nDesign notes.\r\nNo final newline"


def write_eval(root: Path, model: str, bench: str, verdict: np.ndarray) -> tuple[Path, Path]:
    """The two files rule evaluate writes for (model, benchmark), in rhocluster.evaluation.evaluate's format."""
    out = root / "eval" / model
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": i,
            "prompt_sha256": hashlib.sha256(f"{bench}-{i}".encode()).hexdigest(),
            "completion": " The answer is 1.",
            "extracted_answer": "1",
            "gold": "1" if v else "2",
            "verdict": bool(v),
            "timed_out": False,
        }
        for i, v in enumerate(verdict)
    ]
    predictions = out / f"{bench}.predictions.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    correct = int(np.sum(verdict))
    summary = out / f"{bench}.json"
    summary.write_text(
        json.dumps(
            {
                "benchmark": bench,
                "model": f"results/t/models/{model}/hf",
                "accuracy": 100.0 * correct / len(verdict),
                "n": len(verdict),
                "correct": correct,
                "timeouts": 0,
                "empty_predictions": 0,
                "truncated_prompts": 0,
                "settings": {"backend": "hf"},
            },
            indent=2,
        )
    )
    return summary, predictions


def fixture_verdict(model: str, bench: str) -> np.ndarray:
    """Seeded verdicts; later models in MODELS are better."""
    rng = np.random.default_rng([MODELS.index(model), BENCHMARKS.index(bench)])
    return rng.random(N) < 0.2 + 0.1 * MODELS.index(model)


@pytest.fixture
def run(tmp_path: Path) -> dict:
    """Evaluation files, training summaries and logs, cluster levels and selection summaries of a fake run."""
    root = tmp_path / "results"
    evals = {}
    for m in MODELS:
        for b in BENCHMARKS:
            evals[m, b] = write_eval(root, m, b, fixture_verdict(m, b))
    summaries, logs = {}, {}
    for k, v in enumerate(VARIANTS):
        d = root / "models" / v
        d.mkdir(parents=True)
        kept = 1.0 if v == "ct" else 0.6
        summaries[v] = d / "summary.json"
        summaries[v].write_text(
            json.dumps({"kept_fraction": kept, "kept_fraction_by_label": {"math": kept + 0.02 * k if v != "ct" else 1.0, "junk": None}})
        )
        logs[v] = d / "train_log.jsonl"
        logs[v].write_text(
            "".join(
                json.dumps({"step": s, "loss": 5 / s**0.3 + 0.1 * k, "loss_kept": 4.8 / s**0.3, "kept_fraction": kept, "lr": 1e-3})
                + "\n"
                for s in range(1, 200, 10)
            )
        )
    return {"root": root, "evals": evals, "summaries": summaries, "logs": logs}


def table_paths(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "results" / "tables"
    return {
        "results_md": out / "results.md",
        "results_csv": out / "results.csv",
        "labels_md": out / "labels.md",
        "labels_csv": out / "labels.csv",
        "ci_md": out / "ci.md",
        "ci_csv": out / "ci.csv",
        "significance_md": out / "significance.md",
        "significance_csv": out / "significance.csv",
    }


def make_tables(run: dict, out: dict[str, Path], resamples: int = 500) -> None:
    tables.write_tables(run["evals"], run["summaries"], MODELS, BENCHMARKS, "t", out)
    tables.write_significance(run["evals"], MODELS, VARIANTS, ["ct", "rho1"], BENCHMARKS, out, n_resamples=resamples, seed=3)


def snapshot(out: dict[str, Path]) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in out.items()}


def test_tables_regenerate_from_evaluation_files(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    csv = pd.read_csv(out["results_csv"], index_col="model")
    names = ["GSM8K", "SVAMP", "MATH"]
    assert list(csv.columns) == [*names, "avg", "source"]  # seed order, not config order
    ours = csv[csv["source"] == "this workflow, run t"]
    assert list(ours.index) == MODELS
    for m in MODELS:
        for b, name in zip(["gsm8k", "svamp", "math"], names):
            data = json.loads(run["evals"][m, b][0].read_text())
            assert ours.at[m, name] == pytest.approx(data["accuracy"], abs=1e-4)
    np.testing.assert_allclose(ours["avg"], ours[names].mean(axis=1), atol=1e-4)
    published = csv[csv["source"].str.startswith("published")]
    assert len(published) == len(PUBLISHED)
    md = out["results_md"].read_text()
    assert "| model | GSM8K | SVAMP | MATH | avg | source |" in md
    assert "published: Rho-1 paper" in md and "seed proposal's re-evaluation" in md
    assert f"GSM8K {N}, SVAMP {N}, MATH {N}" in md
    labels = pd.read_csv(out["labels_csv"], index_col="variant")
    assert labels.at["rho1", "math"] == pytest.approx(62.0)
    assert pd.isna(labels.at["rho1", "junk"])
    assert "| ct | 100.0 | — | 100.0 |" in out["labels_md"].read_text()
    before = snapshot(out)
    make_tables(run, out)
    assert snapshot(out) == before  # same inputs, same bytes


def test_kept_fraction_shows_an_interval_over_seeds(run, tmp_path):
    """A variant with several seeds prints the mean and its 95% Student-t interval over the seeds (what a
    rerun is checked against); one seed prints its value; the CSV keeps the mean."""
    summaries, seeds = {}, {"ct": ["ct", "ct_s1"], "rho1": ["rho1", "rho1_s1", "rho1_s2"], "cluster": ["cluster"]}
    kept = {"ct": (1.0, 1.0), "ct_s1": (1.0, 1.0), "rho1": (0.75, 0.6), "rho1_s1": (0.71, 0.6)}
    kept |= {"rho1_s2": (0.77, 0.6), "cluster": (0.66, 0.6)}
    for model, (math, overall) in kept.items():
        summaries[model] = tmp_path / f"{model}.json"
        summaries[model].write_text(
            json.dumps({"kept_fraction": overall, "kept_fraction_by_label": {"math": math, "junk": None}})
        )
    cells = tables.label_cells(summaries, seeds)
    from scipy.stats import t as student_t

    half = student_t.ppf(0.975, 2) * np.std([75, 71, 77], ddof=1) / np.sqrt(3)  # 7.59: t with 2 df
    want = f"74.3 [{74.3333 - half:.1f}, {74.3333 + half:.1f}]"
    assert (cells.at["rho1", "math"], cells.at["rho1", "all"]) == (want, "60.0 [60.0, 60.0]") == ("74.3 [66.7, 81.9]", "60.0 [60.0, 60.0]")
    assert pd.isna(cells.at["rho1", "junk"]) and cells.at["cluster", "math"] == pytest.approx(66.0)
    out = table_paths(tmp_path)
    tables.write_tables(run["evals"], summaries, MODELS, BENCHMARKS, "t", out, label_replicates=seeds)
    md = out["labels_md"].read_text()
    assert "| ct | 100.0 [100.0, 100.0] | — | 100.0 [100.0, 100.0] |" in md and "| cluster | 66.0 | — | 60.0 |" in md
    assert pd.read_csv(out["labels_csv"], index_col="variant").at["rho1", "math"] == pytest.approx(74.3333, abs=1e-3)
    kept_table = parse_tables(md)["Kept fraction"]
    assert (kept_table.rows["rho1"][0].low, kept_table.rows["rho1"][0].high) == (66.7, 81.9)


def test_published_averages_reproduce_the_papers():
    table = tables.published_table(list(tables.COLUMNS))
    assert list(table.columns) == [*tables.COLUMNS.values(), "avg", "source"]
    assert table.index.is_unique
    for row, avg in zip(PUBLISHED, table["avg"]):
        if row.reported_avg is not None:
            assert round(avg, 1) == row.reported_avg


NUMBERS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "numbers.md"


@pytest.mark.skipif(not NUMBERS.is_file(), reason=f"{NUMBERS} not found (shared/ absent)")
def test_published_rows_equal_numbers_md():
    """Every published value, and each printed average, as numbers.md gives it (a typo cannot slip in)."""
    lines = NUMBERS.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model | GSM8K"))
    rows = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    assert len(rows) == len(PUBLISHED)
    for cells, row in zip(rows, PUBLISHED):
        values = [float(c) for c in cells[1:10]]
        assert values == [row.accuracy[b] for b in tables.COLUMNS], cells[0]
        assert (float(cells[10]) if cells[10] else None) == row.reported_avg, cells[0]
    table = tables.published_table(list(tables.COLUMNS))
    computed = [row.model for row in PUBLISHED if row.reported_avg is None]
    assert computed and all(table.loc[m, "source"].endswith("avg computed here") for m in computed)


def test_a_changed_evaluation_changes_its_row_and_nothing_else(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    before = snapshot(out)
    v = np.array([json.loads(line)["verdict"] for line in run["evals"]["rho1", "gsm8k"][1].read_text().splitlines()])
    v[np.flatnonzero(~v)[0]] = True  # one more item right
    write_eval(run["root"], "rho1", "gsm8k", v)
    make_tables(run, out)
    after = snapshot(out)
    for key in ("results_md", "results_csv"):
        changed = [(a, b) for a, b in zip(before[key].splitlines(), after[key].splitlines()) if a != b]
        assert len(changed) == 1 and changed[0][1].startswith(b"| rho1 |" if key == "results_md" else b"rho1,"), key
    assert after["labels_md"] == before["labels_md"] and after["labels_csv"] == before["labels_csv"]
    ci = pd.read_csv(out["ci_csv"]).set_index(["model", "benchmark"])
    old_ci = pd.read_csv(io.BytesIO(before["ci_csv"])).set_index(["model", "benchmark"])
    differs = (ci != old_ci).any(axis=1)
    assert set(differs[differs].index) == {("rho1", "gsm8k"), ("rho1", AVG)}


def test_missing_key_fails_naming_the_file(run, tmp_path):
    summary, _ = run["evals"]["cluster", "svamp"]
    data = json.loads(summary.read_text())
    del data["correct"]
    summary.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{summary}.*correct"):
        tables.write_tables(run["evals"], run["summaries"], MODELS, BENCHMARKS, "t", table_paths(tmp_path))


def test_bad_prediction_fails_naming_the_file_and_line(run, tmp_path):
    _, predictions = run["evals"]["ct", "math"]
    lines = predictions.read_text().splitlines()
    row = json.loads(lines[3])
    del row["verdict"]
    lines[3] = json.dumps(row)
    predictions.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"{predictions}:4: .*verdict"):
        tables.write_significance(run["evals"], MODELS, VARIANTS, ["ct"], BENCHMARKS, table_paths(tmp_path))


def test_summary_disagreeing_with_predictions_fails(run, tmp_path):
    summary, predictions = run["evals"]["base", "gsm8k"]
    data = json.loads(summary.read_text())
    data["correct"] = (data["correct"] + 1) % (N + 1)
    data["accuracy"] = 100.0 * data["correct"] / N
    summary.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=str(predictions)):
        tables.write_tables(run["evals"], run["summaries"], MODELS, BENCHMARKS, "t", table_paths(tmp_path))


def test_paired_tests_need_the_same_items(run, tmp_path):
    _, predictions = run["evals"]["cluster", "svamp"]
    lines = predictions.read_text().splitlines()
    write_eval(run["root"], "cluster", "svamp", np.array([json.loads(x)["verdict"] for x in lines[:-1]]))
    with pytest.raises(ValueError, match="different items"):
        tables.write_significance(run["evals"], MODELS, VARIANTS, ["ct"], BENCHMARKS, table_paths(tmp_path))
    with pytest.raises(ValueError, match=f"{run['evals']['cluster', 'svamp'][0]}: {N - 1} items"):
        tables.write_tables(run["evals"], run["summaries"], MODELS, BENCHMARKS, "t", table_paths(tmp_path))


def test_significance_tables(run, tmp_path):
    out = table_paths(tmp_path)
    run["evals"]["cluster", "gsm8k"] = write_eval(run["root"], "cluster", "gsm8k", np.array(
        [json.loads(x)["verdict"] for x in run["evals"]["ct", "gsm8k"][1].read_text().splitlines()]
    ))
    make_tables(run, out, resamples=1000)
    sig = pd.read_csv(out["significance_csv"])
    assert list(sig.columns) == [
        "model", "baseline", "benchmark", "n", "diff", "ci_low", "ci_high", "p_value", "p_exact", "p_holm"
    ]
    pairs = list(dict.fromkeys(zip(sig["model"], sig["baseline"])))
    assert pairs == [("rho1", "ct"), ("cluster", "ct"), ("cluster", "rho1")]
    same = sig[(sig.model == "cluster") & (sig.baseline == "ct") & (sig.benchmark == "gsm8k")].iloc[0]
    assert (same["diff"], same["ci_low"], same["ci_high"], same["p_value"], same["p_exact"]) == (0, 0, 0, 1, 1)
    assert sig["benchmark"].tolist()[:4] == ["gsm8k", "svamp", "math", AVG]
    md = out["significance_md"].read_text()
    assert "Against ct:" in md and "Against rho1:" in md
    ci = pd.read_csv(out["ci_csv"])
    assert len(ci) == len(MODELS) * (len(BENCHMARKS) + 1)
    assert "[" in out["ci_md"].read_text()


def readme_file(tmp_path: Path, body: str = "old block\n") -> Path:
    path = tmp_path / "README.md"
    path.write_bytes((PRE + "\n" + body + POST).encode())
    return path


def test_readme_outside_markers_is_byte_exact(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    path = readme_file(tmp_path)
    png = tmp_path / "results" / "figures" / "accuracy.png"
    figures.write_accuracy_figure(out["ci_csv"], png, "t")
    changed = readme.write_readme(path, "t", out["results_md"], out["labels_md"], out["significance_md"], png, tmp_path / "docs" / "results.png")
    assert changed == (True, True)
    new = path.read_bytes()
    head, tail = PRE.encode(), POST.encode()
    assert new.startswith(head) and new.endswith(tail)
    block = new[len(head) : -len(tail)].decode()
    assert "![Accuracy per benchmark" in block and "](docs/results.png)" in block
    assert "| model | GSM8K |" in block and "Against ct" in block and "Kept fraction" in block
    assert "\r\n" in block  # the file has CRLF somewhere: the block follows
    assert (tmp_path / "docs" / "results.png").read_bytes() == png.read_bytes()
    assert readme.write_readme(path, "t", out["results_md"], out["labels_md"], out["significance_md"], png, tmp_path / "docs" / "results.png") == (False, False)
    assert path.read_bytes() == new


def test_accuracy_details_go_to_their_page_linked_from_the_block(run, tmp_path):
    """With a page, the block links it instead of inlining the paired tests; the page holds the
    intervals and the tests, is rewritten only when they change, and records the fingerprint."""
    out = table_paths(tmp_path)
    make_tables(run, out)
    path, page = readme_file(tmp_path), tmp_path / "docs" / "results.md"
    args = (path, "t", out["results_md"], out["labels_md"], out["significance_md"])
    kw = {"ci_md": out["ci_md"], "page": page, "fingerprint": "0123456789abcdef"}
    assert readme.write_readme(*args, **kw) == (True, False)
    block = path.read_text()
    assert "[docs/results.md](docs/results.md)" in block and "Against ct" not in block and "Kept fraction" in block
    text = page.read_text()
    assert text.index(out["ci_md"].read_text().strip()) < text.index("Against ct:")
    assert readme.readme_fingerprint(text) == readme.readme_fingerprint(block) == "0123456789abcdef"
    assert readme.write_readme(*args, **kw) == (False, False)
    with pytest.raises(ValueError, match="results.md"):
        readme.write_readme(*args, page=page)


def test_the_page_lists_the_held_out_loss_of_every_seed(run, tmp_path):
    """heldout_tables' per-seed table goes to the page, first, as a table of its own (the rerun check
    compares it cell by cell); an empty one (no row with several seeds) leaves the page as before."""
    from rhocluster.reporting.heldout_tables import seeds_caption

    out = table_paths(tmp_path)
    make_tables(run, out)
    path, page = readme_file(tmp_path), tmp_path / "docs" / "results.md"
    seeds = tmp_path / "heldout_seeds.md"
    table = "| model | math | problems |\n|---|---|---|\n| ct | 1.900 [1.800, 2.000] | 2.000 [1.900, 2.100] |\n| ct.s1 | 1.950 [1.850, 2.050] | 2.010 [1.910, 2.110] |\n"
    seeds.write_text(seeds_caption("t", 100) + "\n\n" + table)
    args = (path, "t", out["results_md"], out["labels_md"], out["significance_md"])
    kw = {"ci_md": out["ci_md"], "page": page}
    assert readme.write_readme(*args, **kw, heldout_seeds_md=seeds) == (True, False)
    text = page.read_text()
    assert text.index(table) < text.index(out["ci_md"].read_text().strip())
    parsed = parse_tables(text)
    key = "Held-out mean token loss of every training seed"
    assert list(parsed)[0] == key and list(parsed[key].rows) == ["ct", "ct.s1"]
    assert parsed[key].rows["ct.s1"][0].low == 1.85
    assert "Held-out mean token loss of every training seed, accuracy of every row" in path.read_text()
    seeds.write_text("")
    assert readme.write_readme(*args, **kw, heldout_seeds_md=seeds) == (True, False)
    assert "every seed" not in page.read_text() and "every training seed" not in path.read_text()
    assert readme.write_readme(*args, **kw) == (False, False)  # no table file: the same page


def test_a_changed_evaluation_changes_only_the_readme_block(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    path = readme_file(tmp_path)
    readme.update_readme(path, readme.readme_body(out["results_md"].read_text(), out["labels_md"].read_text(), "t"))
    first = path.read_bytes()
    write_eval(run["root"], "base", "math", np.ones(N, bool))
    make_tables(run, out)
    assert readme.update_readme(path, readme.readme_body(out["results_md"].read_text(), out["labels_md"].read_text(), "t"))
    second = path.read_bytes()
    assert second != first
    assert second.startswith(PRE.encode()) and second.endswith(POST.encode())


@pytest.mark.parametrize(
    "text, message",
    [
        ("no markers at all\n", "found 0 and 0"),
        (f"{readme.START}\nonly the start\n", "found 1 and 0"),
        (f"{readme.START}\n{readme.START}\n{readme.END}\n", "found 2 and 1"),
        (f"{readme.END}\n{readme.START}\n", "comes before"),
    ],
)
def test_bad_markers_fail_naming_the_readme(tmp_path, text, message):
    path = tmp_path / "README.md"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        readme.update_readme(path, "body")
    assert str(path) in str(err.value)
    assert path.read_text() == text


def test_no_figure_is_copied_when_the_readme_cannot_take_the_block(tmp_path):
    (tmp_path / "README.md").write_text("no markers\n")
    fig, md = tmp_path / "a.png", tmp_path / "t.md"
    fig.write_bytes(b"png")
    md.write_text("table\n")
    with pytest.raises(ValueError, match="README.md"):
        readme.write_readme(tmp_path / "README.md", "t", md, md, None, fig, tmp_path / "docs" / "results.png")
    assert not (tmp_path / "docs").exists()
    with pytest.raises(ValueError, match="missing.md"):
        readme.update_readme(tmp_path / "missing.md", "body")


def test_relative_link():
    assert readme.relative_link("docs/results.png", "README.md") == "docs/results.png"
    assert readme.relative_link("docs/results.png", "sub/README.md") == "../docs/results.png"


def test_figures_are_written_and_reproducible(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    levels, selections = [], {}
    rng = np.random.default_rng(0)
    ks = [16, 4]
    counts = rng.zipf(1.6, size=16).astype(np.int64) * 10
    counts[3] = 0
    parent = np.repeat(np.arange(4), 4)
    for level, k in enumerate(ks, 1):
        d = tmp_path / "results" / "clusters" / f"level_{level}"
        d.mkdir(parents=True)
        sizes = counts if level == 1 else np.bincount(parent, weights=counts, minlength=4).astype(np.int64)
        np.save(d / "sizes.npy", sizes)
        (d / "summary.json").write_text(json.dumps({"k": k, "n_points": 100, "n_empty": int((sizes == 0).sum())}))
        levels.append(d)
    for v in ("cluster", "cluster_excess"):
        entries = []
        for level_sizes in (counts, np.bincount(parent, weights=counts, minlength=4)):
            after = np.minimum(level_sizes, np.median(level_sizes[level_sizes > 0]))
            entries.append({"count_before": (level_sizes * 3).tolist(), "count_after": after.tolist(), "entropy_before_normalised": 0.5, "entropy_after_normalised": 0.9})
        selections[v] = tmp_path / f"summary_{v}.json"
        selections[v].write_text(json.dumps({"kept_fraction": 0.6, "levels": {"levels": entries}}))
    fig_dir = tmp_path / "figs"
    paths = {name: fig_dir / f"{name}.png" for name in ("accuracy", "loss", "kept", "clusters")}
    def draw():
        figures.write_accuracy_figure(out["ci_csv"], paths["accuracy"], "t")
        figures.write_training_figures(run["logs"], paths["loss"], paths["kept"], "t", 0.6)
        figures.write_cluster_figure(levels, selections, paths["clusters"], "t")
        return {k: p.read_bytes() for k, p in paths.items()}
    first = draw()
    for data in first.values():
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert draw() == first
    svg = fig_dir / "loss.svg"
    figures.save_figure(figures.loss_figure(run["logs"], "t"), svg)
    svg_bytes = svg.read_bytes()
    figures.save_figure(figures.loss_figure(run["logs"], "t"), svg)
    assert svg.read_bytes() == svg_bytes and b"<svg" in svg_bytes
    assert not list(fig_dir.glob(".*"))  # no temporary files left behind


def test_figure_inputs_are_checked(run, tmp_path):
    log = run["logs"]["rho1"]
    log.write_text(log.read_text() + json.dumps({"step": 500, "loss": 1.0}) + "\n")
    with pytest.raises(ValueError, match=f"{log}:21: .*kept_fraction"):
        figures.write_training_figures(run["logs"], tmp_path / "a.png", tmp_path / "b.png", "t", 0.6)
    d = tmp_path / "level_1"
    d.mkdir()
    np.save(d / "sizes.npy", np.ones(3, np.int64))
    (d / "summary.json").write_text(json.dumps({"k": 4}))
    with pytest.raises(ValueError, match="sizes.npy.*k=4"):
        figures.write_cluster_figure([d], {}, tmp_path / "c.png", "t")
    bad = tmp_path / "ci.csv"
    bad.write_text("model,benchmark,accuracy\nct,gsm8k,1.0\n")
    with pytest.raises(ValueError, match=f"{bad}.*ci_low"):
        figures.write_accuracy_figure(bad, tmp_path / "d.png", "t")


def test_resolution_note_states_the_widest_interval_of_the_fewest_items():
    """±1.96·sqrt(0.25/n) in points, from the benchmark with the fewest items."""
    from rhocluster.reporting.tables import resolution_note

    assert "with 12 items" in resolution_note(pd.Series([12, 40])) and "±28 points" in resolution_note(pd.Series([12, 40]))
    assert "±3 points" in resolution_note(pd.Series([1319]))


def test_variant_table_is_the_runs_rows_of_the_declared_table():
    from dataclasses import asdict

    from rhocluster.reporting.tables import variant_table
    from rhocluster.workflow.variants import variant_rows

    rows = variant_rows({"variants": []})
    table = variant_table({n: asdict(rows[n]) for n in ("ct", "excess_smoothed", "cluster_slm")})
    assert list(table.index) == ["ct", "excess_smoothed", "cluster_slm"]
    assert table.loc["excess_smoothed", "shrinkage"] == 0.5 and table.loc["cluster_slm", "group_level"] == 1
    assert table.loc["ct", "what is ranked, when and over which tokens"] == rows["ct"].summary


def test_an_unlabelled_corpus_says_so_and_gives_what_it_can(run, tmp_path):
    """Without token labels the labels page says "no labels" and gives each variant's kept fraction, the
    fixed excess loss of its kept and dropped tokens and its spread over the leaves, from the masks'
    summaries as the selection jobs write them."""
    from rhocluster.selection.stage import ExcessStats

    summaries = {}
    for v in VARIANTS:
        summaries[v] = tmp_path / f"{v}.json"
        summaries[v].write_text(json.dumps({"kept_fraction": 1.0 if v == "ct" else 0.6}))  # no kept_fraction_by_label
    stats = ExcessStats()
    excess = np.linspace(-1.0, 3.0, 400).reshape(4, 100)
    stats.add(excess, np.ones_like(excess, bool), excess > 0.6)
    masks = {"cluster": tmp_path / "mask.json"}
    masks["cluster"].write_text(json.dumps({
        "excess_loss": stats.summary(),
        "levels": {"levels": [{"n_nonempty_after": 7, "n_nonempty_before": 8, "kept_fraction_min": 0.0, "kept_fraction_max": 0.9}]},
    }))  # fmt: skip
    out = table_paths(tmp_path)
    tables.write_tables(run["evals"], summaries, MODELS, BENCHMARKS, "t", out, mask_summaries=masks)
    md = out["labels_md"].read_text()
    assert md.startswith("No ground-truth token labels in this corpus")
    kept = stats.summary()["kept"]
    assert kept["tokens"] == 240 and kept["mean"] == pytest.approx(1.8, abs=0.01) and kept["q50"] == pytest.approx(1.8, abs=0.02)
    assert "| cluster | 60.0 | 1.80 [" in md and "7 of 8 leaves kept from; kept fraction 0.00–0.90 per leaf" in md
    assert "| ct | 100.0 | — | — | — |" in md
    assert pd.read_csv(out["labels_csv"], index_col="variant").at["rho1", "kept (%)"] == pytest.approx(60.0)


def test_prompts_longer_than_the_context_are_counted_in_the_caption(run, tmp_path):
    out = table_paths(tmp_path)
    make_tables(run, out)
    assert "longer than the model's context" not in out["results_md"].read_text()
    for model in ("ct", "rho1"):
        summary = run["evals"][model, "math"][0]
        data = json.loads(summary.read_text())
        data["generation"] = {"overlong_prompts": 2}
        summary.write_text(json.dumps(data))
    make_tables(run, out)
    assert f"counted wrong (items over all models): MATH 4 of {N * len(MODELS)}." in out["results_md"].read_text()
