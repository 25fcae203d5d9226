"""Figures of the zoo study: MACs vs DRAM traffic (log-log), and weights vs activation traffic."""

from __future__ import annotations

from pathlib import Path

from edgecnn.io import atomic_path
from edgecnn.studies.zoo import ZooStudy


def plot_macs_vs_traffic(study: ZooStudy, out: Path) -> Path:
    """Scatter of MACs against DRAM traffic on log axes, one labelled point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=110)
    for r in study.rows:
        ax.scatter(r.dram_bytes / 1e6, r.macs / 1e9, s=30)
        ax.annotate(
            r.model,
            (r.dram_bytes / 1e6, r.macs / 1e9),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"DRAM traffic per inference (MB, {study.precision}, BN folded, fused)")
    ax.set_ylabel("GMACs per inference")
    ax.set_title("CNN zoo: compute vs memory traffic")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def plot_traffic_bars(study: ZooStudy, out: Path) -> Path:
    """Stacked bars per model: weight traffic and activation (feature-map) traffic in MB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.model for r in study.rows]
    weights = [r.weight_bytes / 1e6 for r in study.rows]
    acts = [r.activation_traffic_bytes / 1e6 for r in study.rows]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    ax.bar(names, weights, label="weights")
    ax.bar(names, acts, bottom=weights, label="feature maps (write + read)")
    ax.set_ylabel(f"DRAM traffic (MB, {study.precision})")
    ax.set_title("Weight vs activation traffic per inference")
    ax.legend()
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
