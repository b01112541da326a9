"""Rewrite the README's results table between its markers, leaving every other byte untouched."""

from __future__ import annotations

from pathlib import Path

from rhocluster.data.atomic import save_text

START = "<!-- results-table:start -->"
END = "<!-- results-table:end -->"


def replace_between_markers(text: str, body: str, source: str = "README") -> str:
    """Return ``text`` with the span between the markers replaced by ``body``; missing markers fail."""
    i = text.find(START)
    j = text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"{source}: markers {START} ... {END} not found (in that order)")
    return text[: i + len(START)] + "\n" + body.rstrip("\n") + "\n" + text[j:]


def update_readme(readme: Path, body: str) -> bool:
    """Rewrite ``readme`` in place (atomically); return whether it changed."""
    old = readme.read_text()
    new = replace_between_markers(old, body, str(readme))
    if new != old:
        save_text(readme, new)
    return new != old


def readme_body(results_md: str, labels_md: str, run: str) -> str:
    """The text that goes between the README markers."""
    return (
        f"<!-- written by the workflow (rule update_readme) from results/{run}/tables/; do not edit by hand -->\n\n"
        + results_md.rstrip("\n")
        + "\n\n"
        + labels_md.rstrip("\n")
        + "\n"
    )
