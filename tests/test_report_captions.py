"""The captions of `snakemake --report` (report/*.rst): every config value they name exists, and they render
as reStructuredText without errors, for the tiny default and for the real config (with the smoke override)."""

from __future__ import annotations

import io
import types

import docutils.core
import jinja2
import pytest

from rhocluster.planner import load_config
from tests.conftest import REPO

CONFIGS = {
    "tiny": ["config/config.yaml"],
    "real": ["config/rho1-tinyllama.yaml"],
    "smoke": ["config/rho1-tinyllama.yaml", "config/rho1-smoke.yaml"],
}
CAPTIONS = sorted((REPO / "report").glob("*.rst"))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda p: p.name)
def test_every_caption_renders_with_every_config(name, caption):
    config = load_config([REPO / f for f in CONFIGS[name]], REPO / "config/schema.yaml")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(caption.read_text())
    text = template.render(snakemake=types.SimpleNamespace(config=config))  # an unknown key raises here
    warnings = io.StringIO()
    docutils.core.publish_parts(text, writer="html", settings_overrides={"warning_stream": warnings})
    assert warnings.getvalue() == "", f"{caption.name}: {warnings.getvalue()}"
    if caption.name == "labels_table.rst":
        assert ("no ground-truth token labels" in text) == (config["data"]["source"] != "synthetic")
