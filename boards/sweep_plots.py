"""PNG plots of a sweep (matplotlib, Agg): resources against N and lanes, Fmax against lanes,
and the estimate against synthesis with the tolerance band."""

from pathlib import Path

import matplotlib

from khop.outputs import atomic_path

from .targets import device_target

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the Agg backend)
from matplotlib.ticker import LogLocator, ScalarFormatter  # noqa: E402

__all__ = ["write_plots", "TOLERANCE_BAND"]

#: Relative band drawn around the diagonal of the estimate-against-synthesis plot.
TOLERANCE_BAND = 0.15

# LUTs are LUT4 sites: LUT4 cells, plus two per ECP5 CCU2C carry cell (boards.estimate.synth_luts).
_FIGURES = (("luts", "LUTs"), ("ffs", "flip-flops"))


def _save(fig, path):
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _synthesized(rows):
    return [r for r in rows if r["luts"] is not None]


def _bits_shown(rows):
    bits = sorted({r["bits"] for r in rows})
    return 2 if 2 in bits else bits[len(bits) // 2]


def _series_plot(rows, x, group, title, path):
    """LUT4 and FFs against ``x``, one line per ``group`` (synthesis solid, estimate dashed),
    at one weight width."""
    rows = _synthesized(rows)
    if not rows:
        return None
    bits = _bits_shown(rows)
    rows = [r for r in rows if r["bits"] == bits]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = sorted({tuple(r[g] for g in group) for r in rows})
    for ax, (key, label) in zip(axes, _FIGURES, strict=True):
        for i, g in enumerate(groups):
            pts = sorted((r[x], r[key], r[f"est_{key}"]) for r in rows
                         if tuple(r[k] for k in group) == g)
            color = f"C{i % 10}"
            name = " ".join(f"{v}" if k == "device" else f"{k}={v}" for k, v in zip(
                group, g, strict=True))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=name)
            est = [(p[0], p[2]) for p in pts if p[2] is not None]
            if est:
                ax.plot([p[0] for p in est], [p[1] for p in est], "x--", color=color,
                        alpha=0.7)
        ax.set_xlabel({"n": "N (neurons)", "lanes": "lanes"}[x])
        ax.set_ylabel(label)
        ax.set_title(f"{label}: synthesis (o) and estimate (x), {bits}-bit weights")
        ax.grid(alpha=0.3)
        if x == "lanes":
            ax.set_xscale("log", base=2)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    _save(fig, path)
    return path


def _estimate_plot(rows, path):
    rows = [r for r in _synthesized(rows) if r["est_luts"] is not None]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (key, label) in zip(axes, _FIGURES, strict=True):
        for i, dev in enumerate(sorted({r["device"] for r in rows})):
            pts = [(r[key], r[f"est_{key}"]) for r in rows if r["device"] == dev]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=f"C{i}",
                       label=dev, zorder=3)
        lo = min(min(r[key], r[f"est_{key}"]) for r in rows) * 0.8
        hi = max(max(r[key], r[f"est_{key}"]) for r in rows) * 1.2
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, zorder=2)
        ax.fill_between([lo, hi], [lo * (1 - TOLERANCE_BAND), hi * (1 - TOLERANCE_BAND)],
                        [lo * (1 + TOLERANCE_BAND), hi * (1 + TOLERANCE_BAND)], color="0.85",
                        label=f"+-{TOLERANCE_BAND:.0%}", zorder=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):       # plain numbers at 1, 2, 5 x 10^k
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel(f"{label}, Yosys")
        ax.set_ylabel(f"{label}, khop estimate")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("khop estimate against Yosys synthesis")
    _save(fig, path)
    return path


def _fmax_plot(rows, path):
    rows = [r for r in rows if r["fmax_mhz"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = sorted({(r["device"], r["n"], r["bits"]) for r in rows})
    for i, (dev, n, bits) in enumerate(groups):
        pts = sorted((r["lanes"], r["fmax_mhz"]) for r in rows
                     if (r["device"], r["n"], r["bits"]) == (dev, n, bits))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i % 10}",
                label=f"{dev} N={n} {bits}-bit")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("lanes")
    ax.set_ylabel("Fmax (MHz, nextpnr)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Fmax against lanes")
    _save(fig, path)
    return path


def _throughput_plot(rows, path, steps):
    """Retrievals/s (the estimate's, at the device's clock and ``steps`` mean steps) against
    the synthesised LUT4s, one panel per device: a point per configuration, labelled lanes x
    batch, hollow when it does not fit; the device's LUT4s as a line."""
    rows = [r for r in rows if r["luts"] is not None and r["est_retrievals_per_s"]]
    if not rows:
        return None
    devices = sorted({r["device"] for r in rows})
    fig, axes = plt.subplots(1, len(devices), figsize=(6.0 * len(devices), 4.4), squeeze=False)
    for ax, dev in zip(axes[0], devices, strict=True):
        mine = [r for r in rows if r["device"] == dev]
        target = device_target(dev)
        batches = sorted({r["batch"] or 1 for r in mine})
        for i, b in enumerate(batches):
            pts = [r for r in mine if (r["batch"] or 1) == b]
            fits = [r for r in pts if r["status"] == "ok"]
            over = [r for r in pts if r["status"] != "ok"]
            color = f"C{i % 10}"
            ax.scatter([r["luts"] for r in fits], [r["est_retrievals_per_s"] for r in fits],
                       color=color, label=f"batch {b}")
            ax.scatter([r["luts"] for r in over], [r["est_retrievals_per_s"] for r in over],
                       facecolors="none", edgecolors=color)
            for r in pts:
                ax.annotate(f"{r['lanes']}x{b}", (r["luts"], r["est_retrievals_per_s"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axvline(target.device.luts, color="grey", ls="--", lw=1)
        ax.set_xlabel("LUT4 (Yosys)")
        ax.set_ylabel(f"retrievals/s at {target.clock_mhz:g} MHz")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ns = sorted({(r["n"], r["p"]) for r in mine})
        shape = ", ".join(f"N={n} P={p}" for n, p in ns)
        ax.set_title(f"{target.device.part}: {shape}", fontsize=9)
    fig.suptitle(f"Retrievals per second against area ({steps:g} steps per query; lanes x "
                 "batch; hollow: does not fit)")
    _save(fig, path)
    return path


def write_plots(rows, out, steps=2.0):
    """Write the plots that the rows have data for into ``out``; returns the paths written."""
    out = Path(out)
    written = [
        _series_plot(rows, "n", ("device", "lanes"), "Resources against N",
                     out / "resources_vs_n.png"),
        _series_plot(rows, "lanes", ("device", "n"), "Resources against lanes",
                     out / "resources_vs_lanes.png"),
        _estimate_plot(rows, out / "estimate_vs_synth.png"),
        _fmax_plot(rows, out / "fmax_vs_lanes.png"),
        _throughput_plot(rows, out / "throughput_vs_area.png", steps),
    ]
    return [p for p in written if p is not None]
