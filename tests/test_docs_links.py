"""Every relative link and every repository path the README, docs/, config comments and rule comments
cite exists (and every #anchor names a heading of its target), so the docs cannot point at a section or
file that has moved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMENTED = [*sorted((REPO / "config").rglob("*.yaml")), *sorted((REPO / "rules").glob("*.smk")), REPO / "Snakefile"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a repository path as prose cites it: a top-level folder of ours, then path characters, ending in a file
# name with an extension or a folder slash
TOP = "rhocluster|config|scripts|rules|bench|docs|tests|report|profiles|envs|\\.ci"
CITED = re.compile(rf"(?<![\w/.{{-])((?:{TOP})/[\w./-]*[\w/])")
SKIP = re.compile(r"[{}*<>$]|results/|\.\.\.")  # patterns, placeholders, shell variables and run outputs are not files
# files the docs' commands write (outputs, not citations)
WRITTEN = {"bench/trainer-gpu.json"}


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(encoding="utf-8"), re.M)}


def cited(text: str) -> set[str]:
    out = set()
    for m in CITED.finditer(text):
        path = m.group(1).rstrip(".")
        following = text[m.end():m.end() + 2]  # e.g. `representation-*.yaml`: a pattern, cut at "-*"
        if SKIP.search(path) or SKIP.search(following) or path in WRITTEN:
            continue
        out.add(path)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_relative_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS + COMMENTED, ids=[str(p.relative_to(REPO)) for p in DOCS + COMMENTED])
def test_cited_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    if doc.suffix in (".yaml", ".smk") or doc.name == "Snakefile":
        text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    missing = sorted(p for p in cited(text) if not (REPO / p).exists())
    assert not missing, f"{doc.relative_to(REPO)} cites paths that do not exist: {missing}"


def test_the_checks_catch_a_moved_file_and_anchor(tmp_path):
    assert cited("see `rhocluster/nowhere.py` and rhocluster/workflow/variants.py.") == {"rhocluster/nowhere.py", "rhocluster/workflow/variants.py"}
    assert cited("results go to `results/{run}/masks/{mask}/`") == set()
    assert slug("Token selection, exactly") == "token-selection-exactly"
    assert "token-selection-exactly" in anchors(REPO / "docs/design.md")


def test_the_readme_is_a_front_page():
    """README stays within 200 lines, generated block included; the longer tables live on docs/results.md."""
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
