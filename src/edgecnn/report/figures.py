"""Matplotlib figures for the report, returned as PNG bytes (Agg backend, no display).

Every function takes plain results dicts (the JSON the commands print) and returns ``bytes`` of a
PNG, or ``None`` when the data needed for that figure is absent.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_DPI = 90
_PALETTE = ["#1f6feb", "#e5534b", "#2da44e", "#bf8700", "#8250df", "#57606a", "#0a7e8c", "#cf222e"]


def _short(name: str, width: int = 28) -> str:
    """A layer name for an axis label: whole when it fits, else its end after an ellipsis (the
    end of a dotted name is the most specific part)."""
    name = str(name)
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _png(fig: Any) -> bytes:
    """PNG bytes; the bounding box grows to take in every label and legend (nothing clipped)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return buf.getvalue()


def compute_vs_traffic(profile: dict, top: int = 40) -> bytes | None:
    """Per fused layer: MACs and DRAM bytes (log scale), the ``top`` heaviest by MACs+bytes."""
    rows = [
        r
        for r in profile.get("layers", [])
        if not r.get("fused_into") and (r.get("macs") or r.get("dram_bytes"))
    ]
    if not rows:
        return None
    n_all = len(rows)
    rows = (
        rows
        if len(rows) <= top
        else sorted(rows, key=lambda r: -(r["macs"] + r["dram_bytes"]))[:top]
    )
    shown = f", the {len(rows)} heaviest of {n_all} layers" if len(rows) < n_all else ""
    order = {id(r): i for i, r in enumerate(profile["layers"])}
    rows.sort(key=lambda r: order.get(id(r), 0))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = range(len(rows))
    ax.bar(
        [i - 0.2 for i in x],
        [r["macs"] or float("nan") for r in rows],
        0.4,
        label="MACs",
        color=_PALETTE[0],
    )
    ax.bar(
        [i + 0.2 for i in x],
        [r["dram_bytes"] or float("nan") for r in rows],
        0.4,
        label="DRAM bytes",
        color=_PALETTE[1],
    )
    ax.set_yscale("log")
    ax.set_xticks(list(x))
    ax.set_xticklabels([_short(r["name"]) for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("MACs / DRAM bytes (log)")
    ax.set_title(
        f"{profile.get('model', '')}: compute vs DRAM traffic per layer "
        f"({profile.get('precision', '')}{shown})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def infer_roofs(profile: dict) -> tuple[float | None, float | None]:
    """Peak FLOP/s and DRAM bytes/s implied by the per-layer roofline latencies (None if absent).

    A compute-bound layer's latency is FLOPs / peak; a memory-bound one's DRAM bytes / bandwidth.
    """
    peak = bw = None
    for r in profile.get("layers", []):
        lat = r.get("latency_s")
        if not lat or lat <= 0:
            continue
        if r.get("bound") == "compute" and r.get("flops"):
            peak = max(peak or 0.0, r["flops"] / lat)
        elif r.get("bound") == "memory" and r.get("dram_bytes"):
            bw = max(bw or 0.0, r["dram_bytes"] / lat)
    return peak, bw


def roofline(profile: dict) -> bytes | None:
    """Layers as points (arithmetic intensity in FLOPs per DRAM byte vs FLOPs), roofs if known."""
    pts = [
        r
        for r in profile.get("layers", [])
        if not r.get("fused_into") and r.get("dram_bytes") and r.get("flops")
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ai = [r["flops"] / r["dram_bytes"] for r in pts]
    peak, bw = infer_roofs(profile)
    if any(r.get("latency_s") for r in pts):
        perf = [r["flops"] / r["latency_s"] if r.get("latency_s") else float("nan") for r in pts]
        ylabel = "attainable FLOP/s (roofline bound)"
    else:
        perf = [float(r["flops"]) for r in pts]
        ylabel = "FLOPs per layer"
    colors = [_PALETTE[1] if r.get("bound") == "memory" else _PALETTE[0] for r in pts]
    ax.scatter(ai, perf, s=14, c=colors, alpha=0.8)
    if peak and bw:
        lo, hi = min(ai) / 2, max(ai) * 2
        knee = peak / bw
        xs = [lo, knee, hi] if lo < knee < hi else [lo, hi]
        ax.plot(
            xs,
            [min(peak, bw * v) for v in xs],
            color="black",
            lw=1.2,
            label=f"roof: {peak / 1e9:.1f} GFLOP/s, {bw / 1e9:.1f} GB/s",
        )
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs / DRAM byte)")
    ax.set_ylabel(ylabel)
    dev = profile.get("device")
    where = f" on {dev}" if dev else ""
    how = " (blue compute-, red memory-bound)" if dev else " (no device profile: FLOPs only)"
    ax.set_title(f"Roofline: {profile.get('model', '')}{where}{how}", fontsize=9)
    return _png(fig)


def compress_steps(report: dict) -> bytes | None:
    """Accuracy, size, MACs and latency per compression step (relative to the input model)."""
    steps = report.get("steps") or []
    if not steps:
        return None
    names = [str(s.get("step", i)) for i, s in enumerate(steps)]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    acc = [
        100 * s["accuracy"] if isinstance(s.get("accuracy"), (int, float)) else float("nan")
        for s in steps
    ]
    axes[0].plot(names, acc, marker="o", color=_PALETTE[2])
    axes[0].set_title("test accuracy (%)", fontsize=9)
    axes[1].bar(names, [(s.get("size_bytes") or 0) / 1e6 for s in steps], color=_PALETTE[0])
    axes[1].set_title("ONNX size (MB)", fontsize=9)
    axes[2].bar(names, [s.get("latency_ms") or 0 for s in steps], color=_PALETTE[3])
    axes[2].set_title("ORT latency, median (ms)", fontsize=9)
    for ax in axes:
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    return _png(fig)


def series_plot(points: list[tuple[str, float]], title: str, ylabel: str) -> bytes | None:
    """A line over labelled points (e.g. SQNR by layer depth, accuracy by prune ratio)."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(range(len(points)), [v for _, v in points], marker=".", color=_PALETTE[4])
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_short(k) for k, _ in points], rotation=90, fontsize=6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def sim_cycles(sim: dict, top: int = 60) -> bytes | None:
    """Per-layer compute and stall cycles (stacked) with utilisation on a second axis."""
    rows = [r for r in sim.get("layers", []) if r.get("cycles")]
    if not rows:
        return None
    n_all = len(rows)
    if n_all > top:  # the layers that take longest, in execution order
        keep = {id(r) for r in sorted(rows, key=lambda r: -r["cycles"])[:top]}
        rows = [r for r in rows if id(r) in keep]
    shown = f" (the {len(rows)} longest of {n_all} layers)" if len(rows) < n_all else ""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = list(range(len(rows)))
    comp = [r.get("compute_cycles", r["cycles"] - r.get("stall_cycles", 0)) for r in rows]
    stall = [r.get("stall_cycles", 0) for r in rows]
    ax.bar(x, comp, color=_PALETTE[0], label="compute cycles")
    ax.bar(x, stall, bottom=comp, color=_PALETTE[1], label="stall cycles")
    ax.set_ylabel("cycles")
    ax.set_xticks(x)
    ax.set_xticklabels([_short(r["name"]) for r in rows], rotation=90, fontsize=6)
    ax2 = ax.twinx()
    ax2.plot(
        x,
        [r.get("utilization", 0) for r in rows],
        color="black",
        marker=".",
        lw=0.8,
        label="utilisation",
    )
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("utilisation")
    lines, labels = ax.get_legend_handles_labels()
    lines2, labels2 = ax2.get_legend_handles_labels()
    ax.legend(
        lines + lines2, labels + labels2, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0)
    )
    acc = sim.get("accelerator", {})
    ax.set_title(
        f"{sim.get('model', '')} on {acc.get('name', 'accelerator')}: cycles per layer{shown}",
        fontsize=9,
    )
    return _png(fig)


def energy_breakdown(
    breakdown: dict[str, float], title: str = "energy by component"
) -> bytes | None:
    """Horizontal bars of energy (J) by component."""
    items = [(k, float(v)) for k, v in (breakdown or {}).items() if v]
    if not items:
        return None
    items.sort(key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v * 1e6 for _, v in items], color=_PALETTE[6])
    ax.set_xlabel("energy (uJ)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


_AXIS_LABELS = {
    "latency_s": "latency (s)",
    "energy_j": "energy per inference (J)",
    "area_mm2": "area (mm²)",
}


def pareto(points: list[dict], x: str = "latency_s", y: str = "energy_j") -> bytes | None:
    """Design points (grey) and the Pareto-optimal ones (red) on ``x`` vs ``y`` (log-log)."""
    pts = [
        p
        for p in points
        if isinstance(p.get(x), (int, float)) and isinstance(p.get(y), (int, float))
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(
        [p[x] for p in pts], [p[y] for p in pts], s=10, color="#999999", label="design points"
    )
    front = [p for p in pts if p.get("pareto")]
    if front:
        front.sort(key=lambda p: p[x])
        ax.plot(
            [p[x] for p in front],
            [p[y] for p in front],
            marker="o",
            color=_PALETTE[1],
            label="Pareto front",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_AXIS_LABELS.get(x, x))
    ax.set_ylabel(_AXIS_LABELS.get(y, y))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("design-space exploration", fontsize=9)
    return _png(fig)


_CANDIDATES = {"ort": "ONNX Runtime", "torch": "PyTorch eager", "baseline": "baseline"}


def bench_latency(benches: list[dict]) -> bytes | None:
    """Median latency per benchmarked candidate, whiskers from min to p99."""
    bars: list[tuple[str, dict]] = []
    for b in benches:
        for cand, s in (b.get("latency") or {}).items():
            label = _CANDIDATES.get(cand, cand)
            if cand == "baseline" and b.get("baseline_precision"):
                label = f"baseline ({b['baseline_precision']})"
            elif cand == "ort" and b.get("precision"):
                label = f"{label} ({b['precision']})"
            bars.append((f"{b.get('model', '')}\n{label}", s))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(bars) + 1), 3.4))
    med = [s["median_ms"] for _, s in bars]
    lo = [s["median_ms"] - s["min_ms"] for _, s in bars]
    hi = [s["p99_ms"] - s["median_ms"] for _, s in bars]
    ax.bar(
        range(len(bars)),
        med,
        yerr=[lo, hi],
        capsize=4,
        color=[_PALETTE[i % len(_PALETTE)] for i in range(len(bars))],
    )
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([n for n, _ in bars], fontsize=7)
    ax.set_ylabel("latency (ms): median, min..p99")
    ax.set_title("measured latency", fontsize=9)
    return _png(fig)


def predicted_vs_measured(pvm: dict) -> bytes | None:
    """Roofline-predicted vs measured latency per model (log-log) with the y = x line."""
    rows = [r for r in pvm.get("rows", []) if r.get("predicted_ms") and r.get("measured_ms")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for i, prec in enumerate(sorted({r.get("precision", "fp32") for r in rows})):
        sub = [r for r in rows if r.get("precision", "fp32") == prec]
        ax.scatter(
            [r["predicted_ms"] for r in sub],
            [r["measured_ms"] for r in sub],
            color=_PALETTE[i],
            label=prec,
            s=22,
        )
        for r in sub:
            ax.annotate(
                r["model"],
                (r["predicted_ms"], r["measured_ms"]),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
            )
    vals = [v for r in rows for v in (r["predicted_ms"], r["measured_ms"])]
    lo, hi = min(vals) / 1.5, max(vals) * 1.5
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="measured = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("roofline estimate on host (ms)")
    ax.set_ylabel("measured ONNX Runtime median (ms)")
    rho = pvm.get("spearman")
    ratio = pvm.get("median_ratio")
    sub = []
    if isinstance(rho, (int, float)) and not math.isnan(rho):
        sub.append(f"Spearman {rho:.2f}")
    if isinstance(ratio, (int, float)):
        sub.append(f"median measured/predicted {ratio:.1f}x")
    ax.set_title(
        "predicted vs measured latency" + (f" ({', '.join(sub)})" if sub else ""), fontsize=9
    )
    ax.legend(fontsize=8)
    return _png(fig)


def curves_plot(
    curves: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    top: int = 12,
) -> bytes | None:
    """One line per key over (x, y) points (e.g. accuracy by prune ratio, per layer).

    At most ``top`` curves are drawn: those whose y falls furthest (the most sensitive); the
    title says when curves were left out. The legend sits outside the axes.
    """
    pts = {k: [(float(x), float(y)) for x, y in v] for k, v in curves.items() if v}
    if not pts:
        return None
    order = sorted(pts, key=lambda k: min(y for _, y in pts[k]))
    shown = order[:top]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for i, k in enumerate(shown):
        xs, ys = zip(*sorted(pts[k]), strict=True)
        ax.plot(xs, ys, marker=".", color=_PALETTE[i % len(_PALETTE)], label=_short(k, 32))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    more = f" ({len(shown)} most sensitive of {len(pts)})" if len(pts) > len(shown) else ""
    ax.set_title(title + more, fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def zoo_scatter(study: dict) -> bytes | None:
    """MACs against DRAM traffic (log-log), one labelled point per model of a zoo study."""
    rows = [r for r in study.get("rows") or [] if r.get("macs") and r.get("dram_bytes")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, r in enumerate(rows):
        x, y = r["dram_bytes"] / 1e6, r["macs"] / 1e9
        ax.scatter(x, y, s=24, color=_PALETTE[i % len(_PALETTE)])
        ax.annotate(r["model"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"DRAM traffic per inference (MB, {study.get('precision')})")
    ax.set_ylabel("GMACs per inference")
    ax.set_title("compute vs memory traffic", fontsize=9)
    return _png(fig)


def casestudy_steps(study: dict) -> bytes | None:
    """Latency and DRAM traffic of each case-study step, relative to the baseline."""
    steps = study.get("steps") or []
    if not steps or not steps[0].get("latency_s") or not steps[0].get("dram_bytes"):
        return None
    names = [str(s.get("step")) for s in steps]
    lat = [s["latency_s"] / steps[0]["latency_s"] for s in steps]
    dram = [s["dram_bytes"] / steps[0]["dram_bytes"] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], lat, width=0.4, color=_PALETTE[0], label="latency")
    ax.bar([x + 0.2 for x in xs], dram, width=0.4, color=_PALETTE[3], label="DRAM traffic")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylabel("relative to baseline")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def codesign_fronts(result: dict) -> bytes | None:
    """Accuracy vs accelerator latency: every evaluated design (grey) and the three fronts."""
    pts = [p for p in result.get("all_points") or [] if isinstance(p, dict)]
    fronts = {
        "joint": result.get("joint_front") or [],
        "network first": (result.get("baseline_fronts") or {}).get("network_first") or [],
        "hardware first": (result.get("baseline_fronts") or {}).get("hardware_first") or [],
    }
    if not pts and not any(fronts.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(
        [p["latency_ms"] for p in pts],
        [p["accuracy"] * 100 for p in pts],
        s=8,
        color="#bbbbbb",
        label="evaluated designs",
    )
    hv = result.get("hypervolume") or {}
    for i, (label, front) in enumerate(fronts.items()):
        if front:
            ax.scatter(
                [r["latency_ms"] for r in front],
                [r["accuracy"] * 100 for r in front],
                facecolors="none",
                edgecolors=_PALETTE[(i + 1) % len(_PALETTE)],
                marker="os^"[i],
                s=50,
                label=f"{label} (HV {hv.get(label.replace(' ', '_'), 0.0):.3f})",
            )
    ax.set_xscale("log")
    ax.set_xlabel("latency on the accelerator (ms)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("co-design fronts (4 objectives, shown on accuracy vs latency)", fontsize=9)
    return _png(fig)
