"""Documents from fetched Hugging Face datasets: OpenWebMath shards and the reference-model mixture.

Both write the corpus format of the synthetic generator (jsonl, ``{"id", "text"}`` per line) without
``spans``, so tokenization marks their shards ``has_labels = False``.

* The web corpus is cut into ``num_shards`` contiguous row ranges of the dataset's parquet files taken
  in path order: shard ``i`` of ``S`` holds rows ``[i*N//S, (i+1)*N//S)`` of the ``N`` rows. A shard job
  reads only the row groups it needs.
* The high-quality mixture renders every record of every dataset through the dataset's template
  (``"Question: {query}\\nAnswer: {response}"``), shuffles all of them with the seed and deals them into
  ``num_shards`` files, so that each shard (and each training epoch) mixes the sources.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from rhocluster.common.jsonl import write_jsonl
from rhocluster.hub.download import Manifest


def parquet_rows(path: Path | str) -> int:
    """Rows of a parquet file, from its footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def add_row_counts(manifest: Manifest) -> Manifest:
    """Fill ``num_rows`` of every parquet file of a dataset manifest."""
    for f in manifest.files:
        if f.path.endswith(".parquet"):
            f.num_rows = parquet_rows(f.local_path)
    return manifest


def shard_range(n_rows: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``shard`` when ``n_rows`` rows are cut into ``n_shards`` ranges."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return shard * n_rows // n_shards, (shard + 1) * n_rows // n_shards


def web_shard_docs(manifest: Manifest, n_shards: int, shard: int, text_field: str = "text") -> Iterator[dict]:
    """Documents of one web shard: ``{"id": "<repo>:<global row>", "text": ...}`` in row order.

    A file without the ``text_field`` column (or with a non-string one), or a row whose text is null or
    empty, is a ValueError naming the file, the row and the problem: a corpus that lost documents would
    shift every row range after it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((f for f in manifest.files if f.path.endswith(".parquet")), key=lambda f: f.path)
    if not files:
        raise ValueError(f"manifest of {manifest.repo} lists no parquet files")
    missing = [f.path for f in files if f.num_rows is None]
    if missing:
        raise ValueError(f"manifest of {manifest.repo} has no row counts for {missing[:3]} (refetch it)")
    total = sum(f.num_rows for f in files)
    if total < n_shards:
        raise ValueError(f"{manifest.repo}: {total} rows cannot fill {n_shards} shards; lower data.web.num_shards")
    start, stop = shard_range(total, n_shards, shard)
    offset = 0
    for f in files:
        lo, hi = max(start, offset), min(stop, offset + f.num_rows)
        if lo < hi:
            pf = pq.ParquetFile(f.local_path)
            where = f"{f.local_path} ({manifest.repo}: {f.path})"
            if text_field not in pf.schema_arrow.names:
                raise ValueError(
                    f"{where}: no column {text_field!r} (columns: {pf.schema_arrow.names}); fix data.web.text_field"
                )
            kind = pf.schema_arrow.field(text_field).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise ValueError(f"{where}: column {text_field!r} holds {kind}, not text")
            group_start = offset
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                g_lo, g_hi = max(lo, group_start), min(hi, group_start + n)
                if g_lo < g_hi:
                    column = pf.read_row_group(g, columns=[text_field]).column(0)
                    texts = column.slice(g_lo - group_start, g_hi - g_lo).to_pylist()
                    for k, text in enumerate(texts):
                        if not isinstance(text, str) or not text.strip():
                            problem = "null" if text is None else "empty" if isinstance(text, str) else type(text).__name__
                            raise ValueError(
                                f"{where}: row {g_lo + k - offset} of the file (row {g_lo + k} of the dataset) has "
                                f"{problem} {text_field!r}; every row is a document"
                            )
                        yield {"id": f"{manifest.repo}:{g_lo + k}", "text": text}
                group_start += n
        offset += f.num_rows


def write_web_shard(manifest: Manifest, n_shards: int, shard: int, out: Path | str, text_field: str = "text") -> int:
    """Write one web shard as jsonl (atomically); returns the number of documents."""
    docs = list(web_shard_docs(manifest, n_shards, shard, text_field))
    write_jsonl(docs, Path(out))
    return len(docs)


class _Fields(string.Formatter):
    def fields(self, template: str) -> list[str]:
        return [name for _, name, _, _ in self.parse(template) if name]


def render_records(records: Sequence[dict], template: str, name: str) -> list[str]:
    """Format every record with ``template`` (``str.format`` fields name the record's columns)."""
    needed = _Fields().fields(template)
    if records:
        absent = [f for f in needed if f not in records[0]]
        if absent:
            raise ValueError(
                f"hq dataset {name}: template fields {absent} are not columns of the data "
                f"({sorted(records[0])}); fix its template"
            )
    return [template.format_map({f: r[f] for f in needed}) for r in records]


def load_records(manifest: Manifest, fmt: str, cache_dir: Path | str | None = None) -> list[dict]:
    """All records of a fetched dataset's files (``parquet``, ``json`` or ``jsonl``) via ``datasets``."""
    from datasets import load_dataset

    builder = {"parquet": "parquet", "json": "json", "jsonl": "json"}[fmt]
    files = sorted(f.local_path for f in manifest.files)
    if fmt == "json":
        for path in files:
            _check_json_array(Path(path))
    try:
        ds = load_dataset(builder, data_files=files, split="train", cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as err:  # datasets raises many kinds (pyarrow, json, its own)
        raise ValueError(f"{manifest.repo}: cannot read {', '.join(files)} as {fmt} records: {err}") from err
    return ds.to_list()


def _check_json_array(path: Path) -> None:
    """A ``format: json`` file must be one JSON array (of record objects), as MetaMathQA's and MathInstruct's are."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        shown = head[:1].decode("utf-8", "replace") or "nothing"
        raise ValueError(
            f"{path}: not a JSON array of records (it starts with {shown!r}); format json expects one array "
            "like [{...}, {...}], format jsonl one object per line"
        )


def build_hq_mixture(
    datasets: Sequence[dict],
    manifests: Sequence[Manifest],
    out_paths: Sequence[Path | str],
    seed: int,
    cache_dir: Path | str | None = None,
    heldout_path: Path | str | None = None,
    heldout_docs: int = 0,
) -> dict[str, int]:
    """Render, shuffle and deal the mixture into ``out_paths`` (jsonl, atomically); returns documents per dataset.

    ``datasets`` are the config entries (``name``, ``format``, ``template``, optional ``max_records``),
    ``manifests`` their fetched files in the same order. The first ``heldout_docs`` documents of the
    shuffled order go to ``heldout_path`` instead (never trained on); with none, the deal is unchanged.
    """
    if heldout_docs and heldout_path is None:
        raise ValueError(f"heldout_docs={heldout_docs} but no held-out output path")
    if len(datasets) != len(manifests):
        raise ValueError(f"{len(datasets)} datasets but {len(manifests)} manifests")
    rng = np.random.default_rng(seed)
    docs: list[dict] = []
    counts = {}
    for spec, manifest in zip(datasets, manifests):
        records = load_records(manifest, spec.get("format", "parquet"), cache_dir)
        limit = spec.get("max_records")
        if limit is not None and limit < len(records):
            keep = np.sort(rng.choice(len(records), size=limit, replace=False))
            records = [records[i] for i in keep]
        texts = render_records(records, spec["template"], spec["name"])
        docs += [{"id": f"{spec['name']}:{i}", "text": t} for i, t in enumerate(texts) if t.strip()]
        counts[spec["name"]] = len(texts)
    order = rng.permutation(len(docs))
    if heldout_docs >= len(order):
        raise ValueError(f"heldout_docs={heldout_docs} would leave none of the {len(order)} documents to train on")
    if heldout_path is not None:
        write_jsonl((docs[j] for j in order[:heldout_docs]), Path(heldout_path))
    order = order[heldout_docs:]
    n = len(out_paths)
    for i, path in enumerate(out_paths):
        write_jsonl((docs[j] for j in order[i::n]), Path(path))
    return counts


def import_tokenizer(model_dir: Path | str, out_dir: Path | str, vocab_size: int) -> int:
    """Copy a Hugging Face model's tokenizer files into ``out_dir`` (atomically) and check that the
    workflow's loader accepts it and that it fits ``vocab_size``; returns its size."""
    import shutil

    from rhocluster.model.convert import TOKENIZER_FILES
    from rhocluster.corpus.tokenizer import load_tokenizer
    from rhocluster.common.atomic import atomic_dir

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    present = [name for name in TOKENIZER_FILES if (model_dir / name).is_file()]
    if "tokenizer.json" not in present and "tokenizer.model" not in present:
        raise FileNotFoundError(f"{model_dir} holds no tokenizer (tokenizer.json or tokenizer.model)")
    with atomic_dir(out_dir) as tmp:
        for name in present:
            shutil.copy2(model_dir / name, tmp / name)
        n = len(load_tokenizer(tmp))
        if n > vocab_size:
            raise ValueError(f"tokenizer of {model_dir} has {n} tokens but model.vocab_size is {vocab_size}")
    return n
