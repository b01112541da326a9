"""The variant table (rhocluster.workflow.variants): the shipped rows, what each implies, and bad declarations
failing before the DAG is built, naming the variant and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from rhocluster.workflow.variants import VariantError, builtin_table, load_variants, variant_pairs, variant_rows
from tests.conftest import change_config, copy_workflow, run_snakemake

REPO = Path(__file__).resolve().parents[1]


def default_config() -> dict:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate(cfg, str(REPO / "config/schema.yaml"))
    return cfg


def test_shipped_rows_say_what_each_variant_ranks():
    rows = variant_rows(default_config())
    assert set(builtin_table()) == set(rows)
    assert rows["ct"].tokens == "all" and not rows["ct"].uses_tree
    assert rows["rho1"].tokens == "slm" and rows["rho1"].group_level is None and not rows["rho1"].uses_tree
    assert rows["random"].mask == "random" and "excess" not in rows["random"].reads
    # excess_static vs cluster_excess: the same fixed excess loss, with and without balancing
    assert "excess" in rows["excess_static"].reads and not rows["excess_static"].uses_tree
    assert "excess" in rows["cluster_excess"].reads and rows["cluster_excess"].uses_tree
    # cluster_slm vs rho1: the same live ranking, inside cluster groups
    assert rows["cluster_slm"].tokens == "slm" and rows["cluster_slm"].group_level == 1
    assert rows["cluster_slm"].uses_tree and "excess" not in rows["cluster_slm"].reads
    for row in rows.values():
        assert row.summary and row.label


def test_default_and_real_config_train_every_shipped_row_in_table_order():
    real = yaml.safe_load((REPO / "config/rho1-tinyllama.yaml").read_text())
    for cfg in (default_config(), real):
        assert list(load_variants(cfg)) == [
            "ct", "rho1", "random", "excess_static", "cluster", "cluster_excess", "cluster_slm", "cluster_filter",
            "excess_smoothed",
        ]


def test_a_config_row_adds_a_variant():
    cfg = default_config()
    cfg["variant_table"] = {"closest": {"tokens": "mask", "mask": "balanced", "leaf_policy": "closest", "summary": "x"}}
    cfg["variants"] = ["ct", "closest"]
    validate(cfg, str(REPO / "config/schema.yaml"))
    rows = load_variants(cfg)
    assert list(rows) == ["ct", "closest"] and rows["closest"].leaf_policy == "closest" and rows["closest"].label == "closest"


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"tokens": "mask", "summary": "x"}, r"variant_table\.bad\.mask: None; a tokens: mask row needs"),
        ({"tokens": "all", "mask": "random", "summary": "x"}, r"variant_table\.bad\.mask: only for tokens: mask"),
        ({"tokens": "mask", "mask": "balanced", "summary": "x"}, r"variant_table\.bad\.leaf_policy"),
        ({"tokens": "mask", "mask": "random", "leaf_policy": "random", "summary": "x"}, r"bad\.leaf_policy: only for mask: balanced"),
        ({"tokens": "mask", "mask": "random", "group_level": 1, "summary": "x"}, r"bad\.group_level: only for tokens: slm"),
        ({"tokens": "slm", "group_level": 9, "summary": "x"}, r"bad\.group_level: 9 but clustering\.levels has 3"),
        ({"tokens": "slm"}, r"variant_table\.bad\.summary"),
        ({"tokens": "some", "summary": "x"}, r"variant_table\.bad\.tokens: 'some'"),
        ({"tokens": "all", "summary": "x", "ratio": 0.5}, r"variant_table\.bad\.ratio: unknown key"),
        ({"tokens": "mask", "mask": "excess_smoothed", "shrinkage": 2, "summary": "x"}, r"bad\.shrinkage: 2; expected a weight"),
        ({"tokens": "mask", "mask": "excess_static", "shrinkage": 0.5, "summary": "x"}, r"bad\.shrinkage: only for mask: excess_smoothed"),
        ({"tokens": "all", "summary": "x", "compare_to": "clustr", "factor": "f"},
         r"variant_table\.bad\.compare_to: 'clustr' is not a declared row; declared rows: ct, rho1"),
        ({"tokens": "all", "summary": "x", "compare_to": "ct"}, r"variant_table\.bad\.factor: compare_to: ct needs the factor"),
        ({"tokens": "all", "summary": "x", "factor": "f"}, r"variant_table\.bad\.factor: only with compare_to"),
        ({"tokens": "all", "summary": "x", "compare_to": "bad", "factor": "f"}, r"bad\.compare_to: a row cannot be compared with itself"),
        ({"tokens": "all", "summary": "x", "compare_to": {"ct": ""}}, r"variant_table\.bad\.compare_to\.ct: ''; the factor"),
        ({"tokens": "all", "summary": "x", "compare_to": {"ct": "f"}, "factor": "g"}, r"bad\.factor: compare_to is a mapping"),
        ({"tokens": "all", "summary": "x", "compare_to": ["ct"]}, r"variant_table\.bad\.compare_to: \['ct'\]; expected a row name"),
    ],
)
def test_bad_rows_name_the_variant_and_key(row, match):
    cfg = default_config()
    cfg["variant_table"] = {"bad": row}
    with pytest.raises(VariantError, match=match):
        load_variants(cfg)


def test_pairs_are_declared_once_and_kept_where_both_rows_train():
    """compare_to: a row name with its factor, or a mapping of row to factor; a pair in both directions
    fails; a pair whose counterpart the run does not train is returned as skipped."""
    rows = variant_rows(default_config())
    assert rows["cluster_slm"].compare_to == (("rho1", "balancing by the tree"),)
    assert [o for o, _ in rows["cluster_excess"].compare_to] == ["excess_static", "cluster"]
    assert rows["ct"].compare_to == ()
    pairs, skipped = variant_pairs(load_variants(default_config()))
    assert [(p.variant, p.counterpart) for p in pairs] == [
        ("rho1", "excess_static"), ("random", "ct"), ("excess_static", "random"), ("cluster", "random"),
        ("cluster_excess", "excess_static"), ("cluster_excess", "cluster"), ("cluster_slm", "rho1"),
        ("cluster_filter", "excess_static"), ("excess_smoothed", "excess_static"),
    ]  # fmt: skip
    assert not skipped and pairs[6].label == "balancing by the tree: cluster_slm − rho1"
    cfg = default_config()
    cfg["variants"] = ["ct", "rho1", "cluster_slm", "cluster_excess"]
    pairs, skipped = variant_pairs(load_variants(cfg))
    assert [(p.variant, p.counterpart) for p in pairs] == [("cluster_slm", "rho1")]
    assert [(p.variant, p.counterpart) for p in skipped] == [("rho1", "excess_static"), ("cluster_excess", "excess_static"), ("cluster_excess", "cluster")]
    cfg["variant_table"] = {"x": {"tokens": "all", "summary": "x", "compare_to": {"ct": "f", "rho1": "g"}}}
    validate(cfg, str(REPO / "config/schema.yaml"))
    assert variant_rows(cfg)["x"].compare_to == (("ct", "f"), ("rho1", "g"))
    cfg["variant_table"] = {"ct": {"tokens": "all", "summary": "x", "compare_to": "random", "factor": "f"}}
    validate(cfg, str(REPO / "config/schema.yaml"))
    with pytest.raises(VariantError, match=r"variant_table\.ct\.compare_to: 'random' already declares 'ct'"):
        load_variants(cfg)


def test_undeclared_or_reserved_names_fail():
    cfg = default_config()
    cfg["variants"] = ["ct", "clustr"]
    with pytest.raises(VariantError, match=r"variants: 'clustr' not declared"):
        load_variants(cfg)
    cfg["variants"] = ["ct"]
    cfg["variant_table"] = {"base": {"tokens": "all", "summary": "x"}}
    with pytest.raises(VariantError, match=r"variant_table\.base: 'base' is reserved"):
        load_variants(cfg)


@pytest.mark.slow
def test_workflow_stops_before_the_dag_on_a_bad_row(tmp_path):
    work = copy_workflow(tmp_path / "wf")

    def edit(cfg):
        cfg["variant_table"] = {"cluster_slm": {"tokens": "slm", "group_level": 7, "summary": "too deep"}}

    change_config(work, edit)
    proc = run_snakemake(work, "-n", timeout=120)
    assert proc.returncode != 0
    assert "variant_table.cluster_slm.group_level: 7 but clustering.levels has 3" in proc.stdout
    assert "Building DAG" not in proc.stdout


@pytest.mark.parametrize("mode", ["per_seed", "shared"])
def test_each_seed_gets_its_tree_and_the_masks_that_follow_it(mode):
    """clustering.trees: per_seed gives seed i's cluster rows tree s{i}, so every balanced mask is per seed;
    shared gives every seed tree s0, and a ranked balanced mask (cluster_excess) is then shared."""
    from rhocluster.clustering.trees import tree_seeds, trees_note
    from rhocluster.workflow.variants import cpt_models

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["clustering"]["trees"] = mode
    config["cpt"]["seeds"] = [7, 8, 9]
    models = cpt_models(config)
    per_seed = mode == "per_seed"
    assert tree_seeds(config, [7, 8, 9]) == ({"s0": 7, "s1": 8, "s2": 9} if per_seed else {"s0": 7})
    assert [models[m].tree for m in ("cluster", "cluster.s1", "cluster_slm.s2")] == (
        ["s0", "s1", "s2"] if per_seed else ["s0", "s0", "s0"]
    )
    assert models["ct.s1"].tree is None and models["excess_static.s2"].tree is None
    assert models["cluster.s1"].mask_key == "cluster.s1"  # drawn at random with its seed either way
    assert models["cluster_excess.s1"].mask_key == ("cluster_excess.s1" if per_seed else "cluster_excess")
    assert models["excess_static.s1"].mask_key == "excess_static"  # no tree, ranked: shared
    for row in ("cluster_filter", "excess_smoothed"):
        assert models[f"{row}.s2"].tree == ("s2" if per_seed else "s0")
        assert models[f"{row}.s2"].mask_key == (f"{row}.s2" if per_seed else row)
    assert ("include the variance" in trees_note(config, 3)) == per_seed
    assert trees_note(config, 1) == ""
    config["clustering"]["trees"] = "each"
    with pytest.raises(ValueError, match="clustering.trees: 'each'"):
        cpt_models(config)


def test_the_schema_enum_of_mask_kinds_is_the_registry():
    """rhocluster.selection.kinds declares the kinds once; the schema's enum lists them (and the former
    names, refused by the variant table with the new name)."""
    from rhocluster.selection.kinds import KINDS, LEAF_POLICIES, RENAMED

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    row = schema["properties"]["variant_table"]["additionalProperties"]["properties"]
    assert set(row["mask"]["enum"]) == set(KINDS) | set(RENAMED)
    assert set(row["leaf_policy"]["enum"]) == set(LEAF_POLICIES)
    cfg = default_config()
    cfg["variant_table"] = {"old": {"tokens": "mask", "mask": "top_excess", "summary": "x"}}
    validate(cfg, str(REPO / "config/schema.yaml"))
    with pytest.raises(VariantError, match=r"variant_table\.old\.mask: 'top_excess' is now called 'excess_static'"):
        load_variants(cfg)


def test_a_new_kind_is_one_registry_entry(tmp_path, monkeypatch):
    """A dummy kind added to the registry (as a plugin would) is accepted by the variant table, gets its
    inputs from what it declares it reads, and runs through the one mask rule's function."""
    import numpy as np

    from rhocluster.data.shards import write_shard
    from rhocluster.selection import kinds
    from rhocluster.workflow.variants import cpt_models

    dummy = kinds.MaskKind("first_half", (), "tests.test_variants:first_half_kind", "the first half of every window")
    monkeypatch.setitem(kinds.KINDS, "first_half", dummy)
    monkeypatch.setattr("rhocluster.workflow.variants.MASKS", tuple(kinds.KINDS))
    cfg = default_config()
    cfg["variant_table"] = {"half": {"tokens": "mask", "mask": "first_half", "summary": "x"}}
    cfg["variants"] = ["ct", "half"]
    model = cpt_models(cfg)["half.s1"]
    assert model.variant.reads == () and not model.variant.uses_tree and model.mask_key == "half"
    write_shard(tmp_path / "00000", np.arange(40).reshape(4, 10) % 7, None, 7, 1, 0)
    files = kinds.MaskFiles([str(tmp_path / "00000")], [str(tmp_path / "m.npy")], str(tmp_path / "s.json"))
    assert kinds.select_masks("first_half", files, {"budget": 0.5, "seed": 0})["kept"] == 4 * 5
    with pytest.raises(ValueError, match="mask kind 'top_excess' \\(renamed to excess_static\\)"):
        kinds.select_masks("top_excess", files, {"budget": 0.5, "seed": 0})


@pytest.mark.slow
def test_a_new_kind_dry_runs_through_the_workflow(tmp_path, monkeypatch):
    """README's recipe for a new kind, followed in a copy of the workflow and of the package: one registry
    entry in rhocluster/selection/kinds.py, its function in a module of its own and its name in the
    schema's enum; then a row using it. The dry run plans the kind's one select_tokens job (reading the
    shards only, as it declares) and the row's training, once per seed."""
    import inspect
    import re
    import shutil

    work = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "rhocluster", work / "rhocluster", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "rhocluster/selection/first_half.py").write_text(
        "from __future__ import annotations\n\n\n" + inspect.getsource(first_half_kind)
    )
    with (work / "rhocluster/selection/kinds.py").open("a") as f:
        f.write(
            '\nKINDS["first_half"] = MaskKind(\n'
            '    "first_half", (), "rhocluster.selection.first_half:first_half_kind", "the first half of every window"\n'
            ")\n"
        )
    schema_path = work / "config/schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["properties"]["variant_table"]["additionalProperties"]["properties"]["mask"]["enum"].append("first_half")
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))

    def add_row(cfg):
        cfg["variant_table"] = {"half": {"tokens": "mask", "mask": "first_half", "summary": "the first half"}}
        cfg["variants"] = ["ct", "half"]

    change_config(work, add_row)
    monkeypatch.setenv("PYTHONPATH", str(work))  # the copy's package, with the new kind, not the checkout's
    proc = run_snakemake(work, "-n", timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", proc.stdout, re.M)
    masks = [body for rule, body in jobs if rule == "select_tokens"]
    assert len(masks) == 1 and "wildcards: mask=half\n" in masks[0], masks
    inputs = re.search(r"input: (.*)", masks[0]).group(1).split(", ")
    assert inputs and all(re.fullmatch(r"results/tiny/shards/web/\d{5}\.bin", path) for path in inputs), inputs
    trained = sorted(re.search(r"wildcards: model=(\S+)", body).group(1) for rule, body in jobs if rule == "train_cpt")
    seeds = len(default_config()["cpt"]["seeds"])
    assert trained == sorted(["ct", "half"] + [f"{v}.s{i}" for v in ("ct", "half") for i in range(1, seeds)])


def first_half_kind(files, settings) -> dict:
    """The dummy kind of the test above: positions 0 .. S/2 - 1 of every window (position 0 never)."""
    import numpy as np

    from rhocluster.common.atomic import save_npy
    from rhocluster.data.shards import Shard

    kept = 0
    for prefix, out in zip(files.prefixes, files.out_masks):
        shard = Shard(prefix)
        mask = np.zeros(shard.shape, np.uint8)
        mask[:, 1 : shard.seq_len // 2 + 1] = 1
        save_npy(out, mask)
        kept += int(mask.sum())
    return {"kept": kept}
