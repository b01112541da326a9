"""Comparing a fresh results block with the committed one, cell by cell (rhocluster.reporting.reproduce)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhocluster.reporting.reproduce import compare_results, parse_cell, parse_tables, results_block

REPO = Path(__file__).resolve().parents[1]

BLOCK = """<!-- written by the workflow (rule update_readme) from results/t/tables/; code fingerprint 0123456789abcdef (rhocluster.workflow.provenance); do not edit by hand -->

Held-out loss (mean token loss, nats; lower is better), run `t` (math 10 documents / 500 tokens). [95% interval] from a bootstrap.

| model | math | web (all) | seeds |
|---|---|---|---|
| base | 8.138 [8.056, 8.220] | 7.950 [7.788, 8.106] | 1 |
| ct | 1.918 [1.877, 1.960] | 1.916 [1.863, 1.969] | 3 |

Paired differences of held-out loss (variant minus baseline); two-sided bootstrap p.

Against ct:

| variant | math | web (all) |
|---|---|---|
| rho1 | +0.559 [+0.466, +0.651] p=0.000* | -0.017 [-0.052, +0.017] p=0.324 |

Kept fraction (%) of the training tokens of each label, per variant; [95% interval] over seeds.

| variant | math | prose | all |
|---|---|---|---|
| ct | 100.0 [100.0, 100.0] | — | 100.0 [100.0, 100.0] |
| rho1 | 74.8 [74.1, 75.3] | 52.8 [52.0, 53.9] | 60.1 |

Few-shot chain-of-thought accuracy (%), greedy decoding (items per benchmark: GSM8K 12).

| model | GSM8K | avg | source |
|---|---|---|---|
| ct | 0.0 | 0.0 | this workflow, run t |
| rho1 | 16.7 | 16.7 | this workflow, run t |

![Accuracy per benchmark](docs/results.png)
"""


def moved(block: str, old: str, new: str) -> str:
    assert block.count(old) == 1, old
    return block.replace(old, new)


def test_cells_parse_into_value_precision_and_interval():
    c = parse_cell("+0.559 [+0.466, +0.651] p=0.000*")
    assert (c.value, c.decimals, c.low, c.high) == (0.559, 3, 0.466, 0.651)
    c = parse_cell("-0.017 [-0.052, +0.017] p=0.324")
    assert (c.value, c.decimals, c.low, c.high) == (-0.017, 3, -0.052, 0.017)
    c = parse_cell("60.1")
    assert (c.value, c.decimals, c.low, c.high) == (60.1, 1, None, None)
    assert parse_cell("—").missing and parse_cell("this workflow, run t").value is None


def test_tables_are_keyed_by_caption_title_and_heading():
    tables = parse_tables(BLOCK)
    assert list(tables) == [
        "Held-out loss",
        "Paired differences of held-out loss / Against ct",
        "Kept fraction",
        "Few-shot chain-of-thought accuracy",
    ]
    held = tables["Held-out loss"]
    assert held.columns == ("math", "web (all)", "seeds") and list(held.rows) == ["base", "ct"]
    assert held.compares_cells and not tables["Few-shot chain-of-thought accuracy"].compares_cells


def test_an_identical_block_is_reproduced():
    assert compare_results(BLOCK, BLOCK) == []


def test_cells_whose_intervals_overlap_are_reproduced():
    fresh = moved(BLOCK, "| ct | 1.918 [1.877, 1.960]", "| ct | 2.010 [1.960, 2.060]")  # touching at 1.960
    fresh = moved(fresh, "+0.559 [+0.466, +0.651] p=0.000*", "+0.400 [+0.300, +0.470] p=0.001*")
    fresh = moved(fresh, "74.8 [74.1, 75.3]", "73.5 [73.0, 74.1]")
    assert compare_results(BLOCK, fresh) == []


def test_cells_whose_intervals_do_not_overlap_fail_naming_them():
    fresh = moved(BLOCK, "| ct | 1.918 [1.877, 1.960]", "| ct | 2.011 [1.961, 2.061]")
    fresh = moved(fresh, "-0.017 [-0.052, +0.017] p=0.324", "-0.090 [-0.130, -0.053] p=0.010*")
    fresh = moved(fresh, "52.8 [52.0, 53.9]", "54.5 [54.0, 55.0]")
    problems = [str(p) for p in compare_results(BLOCK, fresh, "README")]
    assert problems == [
        "README: Held-out loss, row ct, column math: committed 1.918 [1.877, 1.960], fresh 2.011 [1.961, 2.061] (intervals do not overlap)",
        "README: Paired differences of held-out loss / Against ct, row rho1, column web (all): "
        "committed -0.017 [-0.052, +0.017] p=0.324, fresh -0.090 [-0.130, -0.053] p=0.010* (intervals do not overlap)",
        "README: Kept fraction, row rho1, column prose: committed 52.8 [52.0, 53.9], fresh 54.5 [54.0, 55.0] (intervals do not overlap)",
    ]


def test_a_bare_fresh_number_must_lie_inside_the_committed_interval():
    assert compare_results(BLOCK, moved(BLOCK, "| ct | 1.918 [1.877, 1.960]", "| ct | 1.960")) == []
    problems = compare_results(BLOCK, moved(BLOCK, "| ct | 1.918 [1.877, 1.960]", "| ct | 1.961"))
    assert [str(p) for p in problems] == [
        "Held-out loss, row ct, column math: committed 1.918 [1.877, 1.960], fresh 1.961 (outside its interval)"
    ]


def test_a_single_seeds_cells_are_not_compared_but_its_rows_are():
    """A seed's own value is one draw of its training run, its interval over documents only: the per-seed
    table is checked for its rows and columns, not its cells."""
    page = (
        "Held-out mean token loss of every training seed (nats), run `t`.\n\n"
        "| model | math |\n|---|---|\n| ct | 4.415 [4.358, 4.471] |\n| ct.s1 | 4.300 [4.250, 4.350] |\n"
    )
    assert compare_results(page, moved(page, "4.415 [4.358, 4.471]", "4.269 [4.209, 4.328]")) == []
    assert [str(p) for p in compare_results(page, moved(page, "| ct.s1 | 4.300 [4.250, 4.350] |\n", ""))] == [
        "Held-out mean token loss of every training seed: row 'ct.s1' is committed but not in the fresh run"
    ]


def test_a_cell_without_interval_must_print_the_same():
    assert compare_results(BLOCK, moved(BLOCK, "| 60.1 |", "| 60.1 [59.9, 60.3] |")) == []
    problems = compare_results(BLOCK, moved(BLOCK, "| 60.1 |", "| 60.2 |"))
    assert [(p.row, p.column, p.committed, p.fresh) for p in problems] == [("rho1", "all", "60.1", "60.2")]
    assert "printed precision" in str(problems[0])
    seeds = compare_results(BLOCK, moved(BLOCK, "| 3 |", "| 2 |"))
    assert [(p.row, p.column) for p in seeds] == [("ct", "seeds")]
    dash = compare_results(BLOCK, moved(BLOCK, "| — |", "| 12.0 [11.0, 13.0] |"))
    assert [(p.row, p.column, p.committed) for p in dash] == [("ct", "prose", "—")]


def test_accuracy_cells_are_not_compared_but_their_rows_and_columns_are():
    assert compare_results(BLOCK, moved(BLOCK, "| rho1 | 16.7 | 16.7 |", "| rho1 | 0.0 | 0.0 |")) == []
    fresh = moved(BLOCK, "| rho1 | 16.7 | 16.7 | this workflow, run t |\n", "")
    assert [str(p) for p in compare_results(BLOCK, fresh)] == [
        "Few-shot chain-of-thought accuracy: row 'rho1' is committed but not in the fresh run"
    ]


def test_missing_or_extra_rows_columns_and_tables_fail():
    no_row = moved(BLOCK, "| base | 8.138 [8.056, 8.220] | 7.950 [7.788, 8.106] | 1 |\n", "")
    assert [str(p) for p in compare_results(BLOCK, no_row)] == [
        "Held-out loss: row 'base' is committed but not in the fresh run"
    ]
    extra_column = moved(
        moved(
            BLOCK,
            "| variant | math | prose | all |\n|---|---|---|---|",
            "| variant | math | prose | all | junk |\n|---|---|---|---|---|",
        ),
        "| — | 100.0 [100.0, 100.0] |",
        "| — | 100.0 [100.0, 100.0] | 100.0 |",
    )
    extra_column = moved(extra_column, "| 52.8 [52.0, 53.9] | 60.1 |", "| 52.8 [52.0, 53.9] | 60.1 | 40.0 |")
    assert [str(p) for p in compare_results(BLOCK, extra_column)] == [
        "Kept fraction: column 'junk' is in the fresh run but not committed"
    ]
    no_table = moved(BLOCK, "Against ct:", "Against rho1:")
    assert [str(p) for p in compare_results(BLOCK, no_table, "README")] == [
        "README: table 'Paired differences of held-out loss / Against ct' is committed but not in the fresh run",
        "README: table 'Paired differences of held-out loss / Against rho1' is in the fresh run but not committed",
    ]


def test_malformed_tables_and_blocks_are_refused():
    with pytest.raises(ValueError, match="row 'ct' has 3 cells"):
        parse_tables(moved(BLOCK, "| ct | 1.918 [1.877, 1.960] | 1.916 [1.863, 1.969] | 3 |", "| ct | 1.918 | 3 |"))
    with pytest.raises(ValueError, match="need exactly one"):
        results_block(BLOCK)


def test_the_committed_blocks_pass_against_themselves_and_fail_when_a_cell_moves():
    """The committed README block and docs/results.md parse into tables with compared cells; moving one
    held-out loss cell past its interval is caught."""
    readme = results_block((REPO / "README.md").read_text(encoding="utf-8"))
    page = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert compare_results(readme, readme) == [] and compare_results(page, page) == []
    tables = parse_tables(readme)
    held = next(t for key, t in tables.items() if key.startswith("Held-out loss"))
    row, cells = next(iter(held.rows.items()))
    column, cell = next((c, x) for c, x in zip(held.columns, cells) if x.low is not None)
    beyond = f"{cell.high + 10.0 ** -cell.decimals:.{cell.decimals}f}"  # a bare number past the interval
    line = next(line for line in readme.splitlines() if line.startswith(f"| {row} |") and cell.text in line)
    fresh = readme.replace(line, line.replace(cell.text, beyond, 1), 1)
    problems = compare_results(readme, fresh)
    assert [(p.table, p.row, p.column, p.committed, p.fresh) for p in problems] == [
        (held.key, row, column, cell.text, beyond)
    ]
