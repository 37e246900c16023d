"""PNG charts of bench/compare.py's figures, for docs/benchmarks.md (matplotlib, which only the
benchmark venv bench/.venvs/plot has: it is no dependency of the server).

    bench/.venvs/plot/bin/python bench/charts.py [bench/results/compare.json] [docs/img]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ["#1f6feb", "#d9822b", "#2da44e", "#8250df", "#cf222e"]


def _errors(values: list[float]) -> tuple[float, float]:
    m = median(values)
    return m - min(values), max(values) - m


def _bars(ax: Any, groups: list[str], series: dict[str, list[list[float]]], unit: str) -> None:
    """Grouped bars of medians with min-max whiskers: one group per x label, one bar per
    series (peer)."""
    width = 0.8 / max(len(series), 1)
    for i, (label, per_group) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [median(v) if v else 0.0 for v in per_group]
        errors = list(zip(*[_errors(v) if v else (0.0, 0.0) for v in per_group], strict=True))
        ax.bar(
            xs, heights, width, label=label, color=COLOURS[i % len(COLOURS)], yerr=errors, capsize=3
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def gateway(g: dict[str, Any], out: Path) -> None:
    modes = list(g["modes"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, unit, title in (
        (axes[0], "cpu_ms", "server CPU ms per request (log; lower is better)", "CPU per request"),
        (axes[1], "rps", "requests/s (log; higher is better)", "Requests/s, 32 clients"),
    ):
        series = {
            label: [g["figures"][f"{label}|{m}"][key] for m in modes] for label in g["labels"]
        }
        _bars(ax, modes, series, unit)
        ax.set_title(title)
        ax.set_yscale("log")  # the peers differ by orders of magnitude
    fig.suptitle("Gateway in front of an instant upstream (median, min-max whiskers; noisy run)")
    fig.tight_layout()
    fig.savefig(out / "gateway_cpu.png", dpi=110)
    plt.close(fig)


def local(loc: dict[str, Any], out: Path) -> None:
    runs = loc["runs"]
    labels = list(runs)
    streams = sorted({s for label in labels for s in runs[label]}, key=int)
    groups = [f"{s} stream{'s' if s != '1' else ''}" for s in streams]
    for key, unit, name, title in (
        ("tps", "tokens/s, all streams (higher is better)", "local_tps.png", "Tokens/s"),
        (
            "ttft_ms",
            "ms to the first token (lower is better)",
            "local_ttft.png",
            "Time to first token",
        ),
    ):
        fig, ax = plt.subplots(figsize=(9, 4))
        series = {label: [runs[label].get(s, {}).get(key, []) for s in streams] for label in labels}
        _bars(ax, groups, series, unit)
        ax.set_title(f"SmolLM2-135M on llama.cpp, CPU: {title} (median, min-max; noisy run)")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = list(loc["startup_s"])
    _bars(axes[0], ["start-up to a first answer"], {k: [loc["startup_s"][k]] for k in labels}, "s")
    memory = {k: [loc["idle_mb"][k], [loc["peak_mb"][k]]] for k in labels}
    _bars(axes[1], ["idle RSS", "peak RSS"], memory, "MB")
    axes[0].set_title("Start-up (lower is better)")
    axes[1].set_title("Memory (lower is better)")
    fig.tight_layout()
    fig.savefig(out / "startup_memory.png", dpi=110)
    plt.close(fig)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results" / "compare.json"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads(source.read_text(encoding="utf-8"))
    if "gateway" in results:
        gateway(results["gateway"], out)
    if "local" in results:
        local(results["local"], out)
    print(f"charts: {out}")


if __name__ == "__main__":
    main()
