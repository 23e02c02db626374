"""Static plots of an export: the front (robust accuracy against latency, marker area by
size), latency against FLOPs, and the hypervolume history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from search.front._history import HistoryPoint


def plot_front(all_trials: pd.DataFrame, front: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    done = all_trials[all_trials["state"] == "COMPLETE"]
    scale = 400 / max(float(done["size_bytes"].max()), 1.0)
    ax.scatter(
        done["latency_ms"],
        done["robust_accuracy"],
        s=done["size_bytes"] * scale,
        color="lightgray",
        edgecolor="gray",
        label="trials",
    )
    ax.scatter(
        front["latency_ms"],
        front["robust_accuracy"],
        s=front["size_bytes"] * scale,
        color="tab:red",
        edgecolor="black",
        label="Pareto front",
    )
    for _, row in front.iterrows():
        ax.annotate(
            f"#{int(row['trial'])}",
            (row["latency_ms"], row["robust_accuracy"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xlabel("latency (ms, median)")
    ax.set_ylabel("robust accuracy (validation)")
    ax.set_title(f"{title}\nmarker area ~ size in bytes")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_hypervolume_history(history: Sequence[HistoryPoint], path: Path, title: str) -> None:
    """The study's normalised hypervolume after each completed trial, as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = range(1, len(history) + 1)
    volumes = [point.hypervolume for point in history]
    ax.step(steps, volumes, where="post", color="tab:blue")
    ax.scatter(steps, volumes, s=12, color="tab:blue")
    ax.set_xlabel("completed trials")
    ax.set_ylabel("hypervolume (validation, min-max normalised)")
    ax.set_title(f"{title}\nhypervolume history")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency_vs_flops(front: pd.DataFrame, path: Path, title: str) -> None:
    """Re-timed latency against FLOPs of each exported member: whether the timed runtime
    follows the work (points near a line through 0) or a fixed per-call cost (flat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for form, group in front.groupby("latency_form"):
        ax.scatter(group["flops"] / 1e6, group["retimed_ms"], edgecolor="black", label=form)
    for _, row in front.iterrows():
        ax.annotate(
            f"#{int(row['trial'])}",
            (row["flops"] / 1e6, row["retimed_ms"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("MFLOPs (one input)")
    ax.set_ylabel("latency (ms, median, test-side re-timing)")
    ax.set_title(f"{title}\nlatency against work, front members")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", title="timed form")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
