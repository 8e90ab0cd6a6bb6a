"""The report of ``bench/suite.py``: a markdown table and a log-log plot
from the children's results (lists of rows keyed by workload, B, H).
"""

from pathlib import Path

from suite_contenders import LABELS, SHORT
from suite_workloads import SWEPT, WORKLOADS


def _fmt(ms: float) -> str:
    """Three significant figures, no exponent (0.0152, 1.52, 152)."""
    if ms >= 100:
        return f"{ms:.0f}"
    digits = 2
    x = ms
    while x < 10 and digits < 6:
        x, digits = x * 10, digits + 1
    return f"{ms:.{digits - 1}f}"


def _index(results):
    """``{name: {(workload, B, H): row}}`` for the contenders that ran."""
    return {r["name"]: {(x["workload"], x["B"], x["H"]): x for x in r["rows"]}
            for r in results if "skipped" not in r}


def markdown(results, meta) -> str:
    """The run as markdown: a header, the table of the differentiated
    workloads, the per-call overhead, and each contender's check."""
    runs = _index(results)
    bound = runs.pop("bound", {})
    peers = [n for n in runs if n != "ferrule"]
    have_f = "ferrule" in runs
    skipped = [f"{r['name']} ({r['skipped']})" for r in results if "skipped" in r]
    info = {r["name"]: r.get("info", "") for r in results}
    lines = [
        f"ferrule bench suite, {meta['started']}; {meta['machine']}; load average "
        f"{meta['load'][0]:.1f} at the start, {meta['load'][1]:.1f} at the end.",
        "",
        "Contenders, each in its own process: " + "; ".join(
            f"{LABELS[n]} ({info[n]})" for n in runs) + "."
        + (f" Skipped: {', '.join(skipped)}." if skipped else ""),
        f"float32, forward + backward (vjp, all cotangents), fresh outputs on every call, "
        f"median of up to {meta['repeat']} samples, in ms. bound: a numpy copy of the bytes "
        "the workload must read and write (inputs and outputs once each). "
        "ferrule out=: into preallocated outputs (not in the ratio).",
        "",
    ]
    cols = ["workload", "B×H", "MiB moved", "bound"]
    if have_f:
        cols += ["ferrule", "ferrule / bound", "ferrule out="]
    cols += [LABELS[n] for n in peers]
    if have_f and peers:
        cols += ["ferrule / best peer"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    keys = [k for k in _ordered_keys(runs) if k[0] != "add_one"]
    for key in keys:
        wl, B, H = key
        w = WORKLOADS[wl]
        b = bound.get(key)
        cells = [w.label, f"{B}×{H}", f"{w.bytes_moved(B, H) / 2**20:.1f}",
                 _fmt(b["ms"]) if b else "–"]
        f = runs.get("ferrule", {}).get(key)
        if have_f:
            cells += [_fmt(f["ms"]) if f else "–",
                      f"{f['ms'] / b['ms']:.1f}×" if f and b else "–",
                      _fmt(f["out_ms"]) if f and "out_ms" in f else "–"]
        times = {n: runs[n][key]["ms"] for n in peers if key in runs[n]}
        cells += [_fmt(times[n]) if n in times else "–" for n in peers]
        if have_f and peers:
            best = min(times, key=times.get) if times else None
            cells.append(f"**{f['ms'] / times[best]:.2f}** ({LABELS[best]})"
                         if f and best else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _overhead(runs), "", _checks(runs), ""]
    return "\n".join(lines)


def _ordered_keys(runs):
    seen = []
    for rows in runs.values():
        for k in rows:
            if k not in seen:
                seen.append(k)
    order = {wl: i for i, wl in enumerate([*SWEPT, "lstm_step", "add_one"])}
    return sorted(seen, key=lambda k: (order[k[0]], k[1] * k[2]))


def _overhead(runs) -> str:
    key = ("add_one", 1, 4)
    names = [n for n in runs if key in runs[n]]
    if not names:
        return ""
    head = "| per-call overhead: `x + 1.0`, 4 elements | " + " | ".join(
        SHORT[n] for n in names) + " |"
    row = "| µs per call | " + " | ".join(f"{1e3 * runs[n][key]['ms']:.1f}" for n in names) + " |"
    return "\n".join([head, "|" + "---|" * (len(names) + 1), row])


def _checks(runs) -> str:
    errs = {n: max(r["err"] for r in rows.values()) for n, rows in runs.items()}
    return ("Checked before timing, largest max|got − ref| / (1 + max|ref|) against "
            "float64 numpy over all rows: "
            + ", ".join(f"{LABELS[n]} {e:.0e}" for n, e in errs.items()) + ".")


def plot(results, png: Path) -> str:
    """Draw time against size (B×H elements), log-log, one panel per swept
    workload, one line per contender (ferrule's out= dotted) and the bound
    dashed; returns the line to print (also when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("plot skipped: matplotlib is not installed "
                "(pip install -e '.[examples]' installs it)")
    runs = _index(results)
    bound = runs.pop("bound", {})
    fig, axes = plt.subplots(1, len(SWEPT), figsize=(5 * len(SWEPT), 4.2), squeeze=False)
    for ax, wl in zip(axes[0], SWEPT):
        def line(rows, field, **style):
            pts = sorted((k[1] * k[2], r[field]) for k, r in rows.items()
                         if k[0] == wl and field in r)
            if pts:
                ax.plot(*zip(*pts), marker="o", **style)
        for name, rows in runs.items():
            line(rows, "ms", label=LABELS[name], lw=2.5 if name == "ferrule" else 1.5)
            if name == "ferrule":
                line(rows, "out_ms", label="ferrule out=", ls=":", color="C0")
        line(bound, "ms", label="bandwidth bound", ls="--", color="black")
        ax.set(xscale="log", yscale="log", xlabel="B×H (elements)", ylabel="ms",
               title=f"{WORKLOADS[wl].label}, forward + backward")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return f"plot written to {png}"
