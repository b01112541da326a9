"""Published few-shot CoT accuracies (%) that our rows are compared with.

Source: ../shared/reference/numbers.md (Rho-1, arXiv 2404.07965, Table 1; the seed proposal's
re-evaluation of the base model). Columns follow ``rhocluster.reporting.tables.COLUMNS``.
"""

from __future__ import annotations

PUBLISHED: dict[str, dict[str, float | None]] = {
    "TinyLlama-1.1B (Rho-1 paper)": dict(
        gsm8k=2.9, svamp=11.0, asdiv=18.1, mawps=20.4, tabmwp=12.5, mathqa=14.6, mmlu_stem=16.1, sat_math=21.9, math=3.2
    ),
    "TinyLlama-1.1B (seed author's re-evaluation)": dict(
        gsm8k=2.7, svamp=10.9, asdiv=17.9, mawps=20.5, tabmwp=12.5, mathqa=13.9, mmlu_stem=16.4, sat_math=21.9, math=2.2
    ),
    "TinyLlama-CT, 15B tokens (Rho-1 paper)": dict(
        gsm8k=6.4, svamp=21.7, asdiv=36.7, mawps=47.7, tabmwp=17.9, mathqa=13.9, mmlu_stem=23.0, sat_math=25.0, math=2.4
    ),
    "Rho-1-Math-1.1B (Rho-1 paper)": dict(
        gsm8k=29.8, svamp=49.2, asdiv=61.4, mawps=79.8, tabmwp=25.8, mathqa=30.4, mmlu_stem=24.7, sat_math=28.1, math=14.0
    ),
}
