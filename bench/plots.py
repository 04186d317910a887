"""PNG plots for bench/REPORT.md (matplotlib, a dev dependency; without it the report has tables only).

`table_plot` draws any benchmark's first markdown table as horizontal bars (the column with the
most numbers), so every bench/bench_*.py gets a plot without code of its own; footprint and fleet
draw their figures from bench/figures/*.json, which their benchmarks write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

PLOTS = Path(__file__).resolve().parent / "plots"
FIGURES = Path(__file__).resolve().parent / "figures"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        return None  # the report keeps its tables; run_all says plots need matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def available() -> bool:
    return _pyplot() is not None


def parse_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table: header cells and body rows."""
    rows: list[list[str]] = []
    header: list[str] = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            if header:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            rows.append(cells)
    return header, rows


def _number(cell: str) -> tuple[float, str] | None:
    match = NUMBER.search(cell.replace("**", ""))
    if match is None:
        return None
    unit = cell[match.end():].strip().split(" ")[0] if cell[match.end():].strip() else ""
    return float(match.group().replace(",", "")), unit


def table_plot(name: str, markdown: str) -> Path | None:
    """Bars of the most numeric column of the first table; None when there is nothing to draw."""
    plt = _pyplot()
    header, rows = parse_table(markdown)
    if plt is None or len(rows) < 2 or len(header) < 2:
        return None
    best, best_count = 0, 0
    for col in range(1, len(header)):
        count = sum(1 for r in rows if col < len(r) and _number(r[col]) is not None)
        if count > best_count:
            best, best_count = col, count
    if best_count < 2:
        return None
    points = [(r[0][:48], parsed) for r in rows if best < len(r) and (parsed := _number(r[best])) is not None]
    unit = next((u for _, (_, u) in points if u), "")
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(points) + 1.4))
    ax.barh([p[0] for p in points][::-1], [p[1][0] for p in points][::-1], color="#4c72b0")
    ax.set_xlabel(f"{header[best]}" + (f" ({unit})" if unit and unit not in header[best] else ""))
    ax.set_title(name)
    fig.tight_layout()
    return _save(fig, plt, name)


def footprint_plot() -> Path | None:
    plt, path = _pyplot(), FIGURES / "footprint.json"
    if plt is None or not path.exists():
        return None
    data = json.loads(path.read_text())
    scenarios = data["scenarios"]
    fig, (ax_mem, ax_cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [s["name"] for s in scenarios]
    programs = sorted({p["name"] for s in scenarios for p in s["programs"] if p["role"] in ("service", "broker")})
    cmap = plt.get_cmap("tab20")
    for ax, key, budget, label in ((ax_mem, "rss_mb", data["budget_rss_mb"], "RSS (MB)"),
                                   (ax_cpu, "cpu_pct", data["budget_cpu_pct"], "CPU (% of one core)")):
        bottom = [0.0] * len(scenarios)
        for i, prog in enumerate(programs):
            values = [next((p[key] for p in s["programs"] if p["name"] == prog), 0.0) for s in scenarios]
            ax.bar(names, values, bottom=bottom, label=prog, color=cmap(i % 20))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.axhline(budget, color="red", linestyle="--", label="Raspberry Pi budget (run-many)")
        ax.set_ylabel(label)
        ax.set_title(f"services + broker: {label}")
    ax_cpu.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, plt, "footprint")


def fleet_plot() -> Path | None:
    plt, path = _pyplot(), FIGURES / "fleet.json"
    if plt is None or not path.exists():
        return None
    data = json.loads(path.read_text())
    live = [r for r in data["rows"] if r["stage"].startswith("(b)")]
    catch_up = [r for r in data["rows"] if r["stage"].startswith("(c)")]
    if not live:
        return None
    fig, (ax_cpu, ax_rate) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [str(r["writers"]) for r in live]
    ax_cpu.bar(labels, [r["writer_cpu_pct"] for r in live], color="#4c72b0", label="writers (sum)")
    ax_cpu.bar(labels, [r["broker_cpu_pct"] for r in live], bottom=[r["writer_cpu_pct"] for r in live],
               color="#dd8452", label="broker")
    ax_cpu.set_xlabel("influx-writer instances")
    ax_cpu.set_ylabel("CPU (% of one core)")
    ax_cpu.set_title(f"{data['sites']} sites x {data['devices']} devices at 1 Hz, loss "
                     + "/".join(str(r["loss"]) for r in live))
    ax_cpu.legend(fontsize=8)
    if catch_up:
        ax_rate.bar([str(r["writers"]) for r in catch_up], [r["offered_per_s"] for r in catch_up], color="#55a868")
        ax_rate.axhline(data["sites"] * data["devices"], color="red", linestyle="--", label="fleet at 1 Hz")
        ax_rate.legend(fontsize=8)
    ax_rate.set_xlabel("influx-writer instances")
    ax_rate.set_ylabel("readings/s")
    ax_rate.set_title("catch-up after a central outage")
    fig.tight_layout()
    return _save(fig, plt, "fleet")


def _save(fig: Any, plt: Any, name: str) -> Path:
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / f"{re.sub(r'[^a-z0-9_-]', '_', name.lower())}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


SPECIAL = {"footprint": footprint_plot, "fleet": fleet_plot}


def plot_for(name: str, markdown: str) -> Path | None:
    """The plot of one benchmark section: its own figure if it has one, else its first table."""
    special = SPECIAL.get(name)
    return special() if special else table_plot(name, markdown)
