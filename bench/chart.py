"""The chart: one small bar chart per row, medians of A and B with whiskers from min to max."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report import number


def chart(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Draw the rows that have samples into ``path`` (PNG)."""
    import matplotlib as mpl  # noqa: PLC0415 - only the chart needs it (a second to import)

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the backend

    shown = [r for r in rows if r["a_stats"] or r["b_stats"]]
    cols = 3
    nrows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 4.6, nrows * 3.2), squeeze=False)
    for ax, r in zip(axes.flat, shown, strict=False):
        bars = [
            (f"{side}: {r[side.lower()]}", r[f"{side.lower()}_stats"], color)
            for side, color in (("A", "#2b8cbe"), ("B", "#bdbdbd"))
            if r[f"{side.lower()}_stats"]
        ]
        for i, (_label, s, color) in enumerate(bars):
            ax.bar(i, s["median"], color=color, width=0.6)
            yerr = [[s["median"] - s["min"]], [s["max"] - s["median"]]]
            ax.errorbar(i, s["median"], yerr=yerr, color="black", capsize=4)
            ax.annotate(
                number(s["median"], r["unit"]),
                (i, s["median"]),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(6, 2),
                textcoords="offset points",
            )
        ax.set_xlim(-0.75, 1.75)  # room for two bars, so a lone one is as wide as a pair's
        ax.set_xticks(range(len(bars)), [textwrap.fill(label, 22) for label, _s, _c in bars], fontsize=7)
        ax.set_title(f"{r['metric']}\n{r['target']}: {r['met']}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
