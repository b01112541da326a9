"""The report's texts (report/*.rst: the front page and every caption) render for the tiny, real and
smoke configs: every config key they read exists (Jinja's StrictUndefined), and docutils finds nothing
to warn about (halt at level 2), so the page a user opens has no "System Message" and no empty value."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils.core import publish_parts
from jinja2 import Environment, StrictUndefined

from rhocluster.planner.inputs import load_config

REPO = Path(__file__).resolve().parents[1]
TEXTS = sorted((REPO / "report").glob("*.rst"))
CONFIGS = {
    "tiny": [REPO / "config/config.yaml"],
    "real": [REPO / "config/rho1-tinyllama.yaml"],
    "pilot": [REPO / "config/rho1-tinyllama.yaml", REPO / "config/rho1-pilot.yaml"],
    "smoke": [REPO / "config/rho1-tinyllama.yaml", REPO / "config/rho1-smoke.yaml"],
}


def render(path: Path, config: dict) -> str:
    """What Snakemake's report does with a caption (Jinja with the workflow's config), but strict."""
    env = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    text = env.from_string(path.read_text(encoding="utf-8")).render(snakemake=SimpleNamespace(config=config))
    return publish_parts(text, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})["body"]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("path", TEXTS, ids=[p.stem for p in TEXTS])
def test_every_report_text_renders_without_warning(path, name):
    config = load_config(CONFIGS[name], REPO / "config/schema.yaml")
    html = render(path, config)
    assert html.strip() and "System Message" not in html
    if path.name == "labels_table.rst":
        assert ("no ground-truth token labels" in html) == (config["data"]["source"] != "synthetic")


def test_a_missing_key_or_bad_markup_fails(tmp_path):
    config = load_config(CONFIGS["tiny"], REPO / "config/schema.yaml")
    (tmp_path / "old.rst").write_text('budget {{ snakemake.config["selection"]["ratio"] }}\n')
    with pytest.raises(Exception, match="ratio"):
        render(tmp_path / "old.rst", config)
    (tmp_path / "bad.rst").write_text("term\n  definition\nno blank line after it\n")
    with pytest.raises(Exception, match="(?i)definition list ends without a blank line"):
        render(tmp_path / "bad.rst", config)


def test_the_front_page_names_no_variant_by_hand():
    """The variants are listed by the generated Variants table (tables/variants.csv), not restated."""
    text = (REPO / "report/workflow.rst").read_text(encoding="utf-8")
    from rhocluster.workflow.variants import builtin_table

    assert not [name for name in builtin_table() if f"**{name}**" in text]
