"""Published few-shot CoT accuracies (%) that our rows are compared with.

Source: the Rho-1 paper's few-shot CoT results (Lin et al. 2024, arXiv 2404.07965) and the seed
proposal's re-evaluation of the base model (tests/test_reporting.py checks every value against the
project's copy of both). Keys are
benchmark ids (columns in ``rhocluster.reporting.tables.COLUMNS`` order). ``reported_avg`` is the average the
source prints (None where it prints none); the tables show the plain mean of the shown columns,
which reproduces the printed averages to their rounding (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

RHO1_PAPER = "published: Rho-1 paper (arXiv 2404.07965)"
SEED_REEVAL = "published: seed proposal's re-evaluation"


@dataclass(frozen=True)
class PublishedRow:
    """One published row: model name, where it comes from, accuracy (%) per benchmark id."""

    model: str
    source: str
    accuracy: dict[str, float]
    reported_avg: float | None


PUBLISHED: tuple[PublishedRow, ...] = (
    PublishedRow(
        "TinyLlama-1.1B",
        RHO1_PAPER,
        dict(gsm8k=2.9, svamp=11.0, asdiv=18.1, mawps=20.4, tabmwp=12.5, mathqa=14.6, mmlu_stem=16.1, sat_math=21.9, math=3.2),
        13.4,
    ),
    PublishedRow(
        "TinyLlama-1.1B, re-evaluated",
        SEED_REEVAL,
        dict(gsm8k=2.7, svamp=10.9, asdiv=17.9, mawps=20.5, tabmwp=12.5, mathqa=13.9, mmlu_stem=16.4, sat_math=21.9, math=2.2),
        None,
    ),
    PublishedRow(
        "TinyLlama-CT, 15B tokens",
        RHO1_PAPER,
        dict(gsm8k=6.4, svamp=21.7, asdiv=36.7, mawps=47.7, tabmwp=17.9, mathqa=13.9, mmlu_stem=23.0, sat_math=25.0, math=2.4),
        21.6,
    ),
    PublishedRow(
        "Rho-1-Math-1.1B, 15B trained / 9B selected",
        RHO1_PAPER,
        dict(gsm8k=29.8, svamp=49.2, asdiv=61.4, mawps=79.8, tabmwp=25.8, mathqa=30.4, mmlu_stem=24.7, sat_math=28.1, math=14.0),
        38.1,
    ),
)
