"""The workflow lints clean (``snakemake --lint``) and is ``snakefmt``-formatted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, copy_workflow, run_snakemake


def test_snakemake_lint_is_clean(tmp_path):
    proc = run_snakemake(copy_workflow(tmp_path / "wf"), "--lint", timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout, proc.stdout[-4000:]


def test_snakefmt_leaves_rules_unchanged():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    proc = subprocess.run([str(snakefmt), "--check", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _rule_blocks() -> dict[str, str]:
    """Every rule of the workflow with the text of its body, dedented to top level (Snakefile and
    rules/*.smk; rules inside an if/else block too)."""
    import re

    blocks: dict[str, str] = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^( *)(?:rule|checkpoint) (\w+):$", line)
            if not m:
                continue
            indent, body = len(m.group(1)), []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt[indent:])
            blocks[m.group(2)] = "\n" + "\n".join(body).strip("\n")
    return blocks


def test_every_rule_has_log_and_benchmark():
    blocks = _rule_blocks()
    assert len(blocks) > 20
    targets_only = {"all", "report_all"}  # rules that only gather inputs
    for name, body in blocks.items():
        if name in targets_only:
            assert "shell:" not in body and "script:" not in body and "run:" not in body, name
            continue
        assert "\n    log:\n" in body, f"rule {name} has no log:"
        assert "\n    benchmark:\n" in body, f"rule {name} has no benchmark:"


def test_each_rule_names_its_script_log_and_benchmark_after_itself():
    """One name per stage: rule X runs scripts/X.py and writes logs/.../X[...] and benchmarks/.../X[...]."""
    import re

    for name, body in _rule_blocks().items():
        script = re.search(r'\n    script:\n\s+"\.\./scripts/(\w+)\.py"', body)
        if "script:" in body:
            assert script and script.group(1) == name, f"rule {name} runs {script and script.group(1)}.py"
        for directive, root in (("log", "LOGS"), ("benchmark", "TIMINGS")):
            m = re.search(rf"\n    {directive}:\n(.*?)\n    \w", body, re.S)
            if m:
                assert re.search(rf"{{{root}}}/{name}[/.]", m.group(1)), f"rule {name}'s {directive} is {m.group(1).strip()}"


def test_no_rule_file_uses_a_name_another_stage_file_defines():
    """Shared names (paths, variant tables, helpers) live in rules/common.smk; a stage file's own
    top-level names are used by that file only, so each rules/*.smk reads on its own."""
    import re

    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    texts = {path.name: path.read_text() for path in files}
    for name, text in texts.items():
        if name == "common.smk":
            continue
        defined = re.findall(r"^(?:def )?([A-Za-z_]\w*)(?: \+?=|\()", text, re.M)
        for symbol in set(defined) - {"include", "configfile", "validate", "min_version", "report"}:
            users = [other for other, body in texts.items() if other != name and re.search(rf"\b{symbol}\b", body)]
            assert not users, f"{symbol}, defined in rules/{name}, is used in {users}: move it to rules/common.smk"


def test_the_design_stage_table_lists_only_rules_that_exist():
    import re

    rules = set(_rule_blocks())
    table = (REPO / "docs" / "design.md").read_text().split("## The stages")[1].split("\n\n")[2]
    named = {n for row in table.splitlines() for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named and named <= rules, named - rules


def test_conda_envs_pin_what_pyproject_pins_and_install_this_package():
    import tomllib

    import yaml

    pins = {}
    for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = dep.split("==")
        pins[name.lower().replace("_", "-")] = version
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for path in envs:
        deps = yaml.safe_load(path.read_text())["dependencies"]
        assert "python=3.11" in deps, path.name
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        # A relative path would resolve against Snakemake's copy of the file under .snakemake/conda.
        assert pip[-1] == "--editable ${RHOCLUSTER_ROOT}", path.name
        for line in pip[:-1]:
            name, version = line.split("==")
            key = name.lower().replace("_", "-")
            assert pins.get(key) == version, f"{path.name}: {line} vs pyproject {pins.get(key)}"


def test_committed_rule_graph_shows_every_rule_of_the_default_dag(tmp_path):
    """docs/rulegraph.svg (README) is `snakemake --rulegraph` rendered: regenerate with `make rulegraph`."""
    import re

    proc = run_snakemake(copy_workflow(tmp_path / "wf"), "--rulegraph", timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:]
    rules = set(re.findall(r'\[label = "(\w+)"', proc.stdout))
    assert len(rules) > 20
    shown = set(re.findall(r">(\w+)</text>", (REPO / "docs" / "rulegraph.svg").read_text()))
    assert rules == shown, f"missing from the picture: {rules - shown}; no longer rules: {shown - rules}"
