"""Rewrite the README's results block between its markers, leaving every other byte untouched."""

from __future__ import annotations

import os
from pathlib import Path

from rhocluster.common.atomic import atomic_path

START = "<!-- results-table:start -->"
END = "<!-- results-table:end -->"


def replace_between_markers(text: str, body: str, source: str = "README", start: str = START, end: str = END) -> str:
    """``text`` with the span between the markers ``start`` and ``end`` replaced by ``body``.

    Fails naming ``source`` unless each marker occurs exactly once, start before end. The body's
    line endings follow the file's (CRLF if the file has any); bytes outside the markers are kept.
    """
    n_start, n_end = text.count(start), text.count(end)
    if n_start != 1 or n_end != 1:
        raise ValueError(f"{source}: need exactly one {start} and one {end}, found {n_start} and {n_end}")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ValueError(f"{source}: {end} comes before {start}")
    newline = "\r\n" if "\r\n" in text else "\n"
    inner = body.strip("\n").replace("\r\n", "\n").replace("\n", newline)
    return text[: i + len(start)] + newline + inner + newline + text[j:]


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _read_readme(readme: Path) -> str:
    try:
        # bytes, not read_text: no newline translation, so CRLF and lone CR survive
        return readme.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{readme}: cannot read the README whose results block the workflow rewrites ({err})") from err


def update_readme(readme: Path | str, body: str) -> bool:
    """Rewrite ``readme`` in place (atomically, byte-exact outside the markers); return whether it changed."""
    readme = Path(readme)
    old = _read_readme(readme)
    new = replace_between_markers(old, body, str(readme))
    if new != old:
        _write_bytes(readme, new.encode("utf-8"))
    return new != old


def write_if_changed(dst: Path | str, data: bytes) -> bool:
    """Write ``data`` to ``dst`` atomically unless it already holds these bytes; return whether it changed."""
    dst = Path(dst)
    if dst.exists() and dst.read_bytes() == data:
        return False
    _write_bytes(dst, data)
    return True


def copy_figure(src: Path | str, dst: Path | str) -> bool:
    """Copy ``src`` onto ``dst`` atomically unless the bytes are already equal; return whether it changed."""
    return write_if_changed(dst, Path(src).read_bytes())


def relative_link(target: Path | str, readme: Path | str) -> str:
    """``target`` relative to the README's folder, with forward slashes (a Markdown link)."""
    return Path(os.path.relpath(Path(target), Path(readme).parent)).as_posix()


def _source_comment(run: str, fingerprint: str | None, what: str) -> str:
    source = f"results/{run}/tables/"
    if fingerprint:
        source += f"; code fingerprint {fingerprint} (rhocluster.workflow.provenance)"
    return f"<!-- written by the workflow (rule update_readme) from {source}; {what} -->"


def readme_body(
    results_md: str,
    labels_md: str,
    run: str,
    significance_md: str | None = None,
    figure_link: str | None = None,
    heldout_md: str | None = None,
    fingerprint: str | None = None,
    page_link: str | None = None,
    page_seeds: bool = False,
) -> str:
    """The text between the README markers, what was measured first: held-out loss, kept fraction per
    label, the accuracy table (with the published rows) and its figure, then the paired tests, or,
    with ``page_link``, a link to the page that holds them (and, with ``page_seeds``, the held-out loss
    of every training seed)."""
    parts = [_source_comment(run, fingerprint, "do not edit by hand")]
    if heldout_md:
        parts.append(heldout_md)
    parts.append(labels_md)
    parts.append(results_md)
    if figure_link:
        parts.append(
            f"![Accuracy per benchmark and model, run {run}, with 95% bootstrap intervals]({figure_link})"
        )
    if page_link:
        seeds = "Held-out mean token loss of every training seed, accuracy" if page_seeds else "Accuracy"
        parts.append(
            f"{seeds} of every row with its bootstrap interval, and the paired tests of accuracy differences "
            f"against ct and rho1: [{page_link}]({page_link})."
        )
    elif significance_md:
        parts.append(significance_md)
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def page_body(
    run: str, ci_md: str, significance_md: str, fingerprint: str | None = None, heldout_seeds_md: str | None = None
) -> str:
    """The generated page of details: with ``heldout_seeds_md`` (non-empty), the held-out loss of every
    training seed; then every row's accuracy interval and the paired accuracy tests."""
    parts = [
        _source_comment(run, fingerprint, "the whole file is generated; do not edit by hand"),
        f"# Result details, run `{run}`",
    ]
    if heldout_seeds_md and heldout_seeds_md.strip():
        parts += ["## Held-out loss of every seed and the type-balanced pairs", heldout_seeds_md.strip("\n"), "## Accuracy"]
    parts += [
        "Accuracy intervals:\n\n" + ci_md.strip("\n"),
        "Paired tests:\n\n" + significance_md.strip("\n"),
    ]
    return "\n\n".join(parts) + "\n"


def readme_fingerprint(text: str) -> str | None:
    """The code fingerprint recorded in a README's results block (None if it records none)."""
    import re

    m = re.search(r"code fingerprint ([0-9a-f]{16})", text)
    return m.group(1) if m else None


def write_readme(
    readme: Path | str,
    run: str,
    results_md: Path | str,
    labels_md: Path | str,
    significance_md: Path | str | None = None,
    figure: Path | str | None = None,
    figure_dest: Path | str | None = None,
    heldout_md: Path | str | None = None,
    fingerprint: str | None = None,
    ci_md: Path | str | None = None,
    page: Path | str | None = None,
    heldout_seeds_md: Path | str | None = None,
) -> tuple[bool, bool]:
    """Copy ``figure`` to ``figure_dest`` (a committed path) and rewrite the README block from the
    table files, with an image link to the copy; with ``page`` (and ``ci_md``), write the held-out loss
    of every seed (``heldout_seeds_md``, where given and not empty), the accuracy intervals and paired
    tests to that committed page and link it from the block instead of inlining the tests. Return
    (README or page changed, figure changed)."""
    # markers first: a README that cannot take the block fails before anything is written
    replace_between_markers(_read_readme(Path(readme)), "", str(readme))
    link, figure_changed = None, False
    if figure is not None and figure_dest is not None:
        figure_changed = copy_figure(figure, figure_dest)
        link = relative_link(figure_dest, readme)

    def text(path: Path | str | None) -> str | None:
        return None if path is None else Path(path).read_text(encoding="utf-8")

    page_changed, page_link = False, None
    seeds = (text(heldout_seeds_md) or "").strip("\n")
    if page is not None:
        if ci_md is None or significance_md is None:
            raise ValueError(f"{page}: the accuracy page needs both the interval and the significance tables")
        details = page_body(run, text(ci_md), text(significance_md), fingerprint, seeds)
        page_changed = write_if_changed(page, details.encode())
        page_link = relative_link(page, readme)
    body = readme_body(
        text(results_md),
        text(labels_md),
        run,
        significance_md=text(significance_md),
        figure_link=link,
        heldout_md=text(heldout_md),
        fingerprint=fingerprint,
        page_link=page_link,
        page_seeds=bool(seeds),
    )
    return update_readme(readme, body) or page_changed, figure_changed
