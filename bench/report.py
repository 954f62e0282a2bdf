"""Results: machine facts, the comparison table (ours, reference, ratio, target), plot."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.targets import PROJECT_ROOT

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, check=False, timeout=10,
    ).stdout.strip()  # fmt: skip
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 2**20, 1),
        "python": sys.version.split()[0], "platform": platform.platform(),
        "git_commit": commit,
        # Others' work on a shared machine skews every figure: record how busy it was.
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def _ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or reference is None or reference == 0 or math.isnan(ours + reference):
        return None
    return round(ours / reference, 2)


def _by_n(points: list[dict[str, Any]] | None) -> dict[int, dict[str, Any]]:
    return {p["n"]: p for p in points or []}


def _row(
    scenario: str, metric: str, ours: float | None, ref: float | None, target: str = "",
    meets: bool | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {"scenario": scenario, "metric": metric, "ours": ours, "reference": ref,
            "ratio": _ratio(ours, ref), "target": target, "meets": meets}  # fmt: skip


def summarize(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per compared figure; `meets` is judged only where the issue set a target."""
    rows = []
    conn = scenarios.get("connections", {})
    ours, ref = (_by_n(conn.get(t, {}).get("points")) for t in ("gamesocket", "reference"))
    for n in sorted(ours.keys() | ref.keys()):
        value = ours.get(n, {}).get("kib_per_connection")
        target = "< 20 KiB" if n == 5000 else ""
        meets = value < 20 if n == 5000 and value is not None else None
        rows.append(_row("connections", f"KiB per idle socket, N={n}", value,
                         ref.get(n, {}).get("kib_per_connection"), target, meets))  # fmt: skip
    fan = scenarios.get("fanout", {})
    ours, ref = (_by_n(fan.get(t, {}).get("points")) for t in ("gamesocket", "reference"))
    for n in sorted(ours.keys() | ref.keys()):
        for q in ("p50", "p99"):
            value = ours.get(n, {}).get("latency", {}).get(f"{q}_ms")
            ref_value = ref.get(n, {}).get("latency", {}).get(f"{q}_ms")
            row = _row("fanout", f"{q} ms, {n} spectators", value, ref_value)
            if n == 1000 and q == "p99":
                row["target"] = "<= 1.5x reference"
                row["meets"] = None if row["ratio"] is None else row["ratio"] <= 1.5
            rows.append(row)
    thr = scenarios.get("throughput", {})
    ref_rate = thr.get("reference", {}).get("moves_per_s")
    stores = [s for s in ("sqlite", "postgres") if f"gamesocket-{s}" in thr]
    if ref_rate is not None and not stores:
        rows.append(_row("throughput", "moves/s", None, ref_rate))
    for store in stores:
        result = thr[f"gamesocket-{store}"]
        value = result.get("moves_per_s")
        target, meets = ("", None)
        if store == "sqlite":
            target, meets = ">= 2000 moves/s", None if value is None else value >= 2000
        rows.append(_row("throughput", f"moves/s, {store}", value, ref_rate, target, meets))
    loop = scenarios.get("loop", {})
    for phase in ("idle_ping", "busy_ping"):
        value = loop.get("gamesocket", {}).get(phase, {}).get("p99_ms")
        ref_value = loop.get("reference", {}).get(phase, {}).get("p99_ms")
        label = "ping p99 ms, idle" if phase == "idle_ping" else "ping p99 ms, searches running"
        target, meets = ("", None)
        if phase == "busy_ping":
            target, meets = "< 10 ms", None if value is None else value < 10
        rows.append(_row("loop", label, value, ref_value, target, meets))
    return [r for r in rows if r["ours"] is not None or r["reference"] is not None]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value)


# -- the peers side by side (connect4 on every target) ---------------------------------------
PEER_TARGETS = ("gamesocket", "reference", "colyseus", "boardgameio")
# The targets every row is divided by.
BASES = ("reference", "colyseus")


def _complete_share(point: dict[str, Any]) -> float | None:
    """Spectators that saw every update in order, as a share of those asked for."""
    if "spectators_complete" not in point or not point.get("n"):
        return None
    return round(point["spectators_complete"] / point["n"], 3)


# (figure, how to read it from one fan-out point); N is appended to the figure.
FANOUT_FIGURES: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("server CPU us per delivery", lambda p: p.get("server_cpu_us_per_delivery")),
    ("p50 ms", lambda p: p.get("latency", {}).get("p50_ms")),
    ("p99 ms", lambda p: p.get("latency", {}).get("p99_ms")),
    ("spectators complete (share)", _complete_share),
    ("run time / nominal", lambda p: p.get("window_over_nominal")),
    ("busiest client worker (core share)", lambda p: p.get("max_worker_cpu_share")),
)
THROUGHPUT_FIGURES: tuple[tuple[str, str], ...] = (
    ("moves/s", "moves_per_s"),
    ("moves/s, lowest of the repeats", "moves_per_s_min"),
    ("moves/s, highest of the repeats", "moves_per_s_max"),
    ("server CPU us per move", "server_cpu_us_per_move"),
    ("client (core share)", "client_cpu_share"),
)


# What `median_run` keeps of every repeat.
REPEAT_FIGURES = (
    "moves_per_s",
    "server_cpu_us_per_move",
    "client_cpu_share",
    "games_finished",
    "error",
)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of a throughput scenario's repeats on one target, the run with the median moves/s
    (of an even count, the lower middle one), with the lowest and highest moves/s and
    every run's figures beside it. A failed run has no moves/s and is not ranked; when
    every run failed, the last one's error stands."""
    if len(runs) == 1:
        return runs[0]
    measured = sorted(
        (run for run in runs if run.get("moves_per_s") is not None),
        key=lambda run: float(run["moves_per_s"]),
    )
    if not measured:
        return runs[-1]
    return {
        **measured[(len(measured) - 1) // 2],
        "moves_per_s_min": measured[0]["moves_per_s"],
        "moves_per_s_max": measured[-1]["moves_per_s"],
        "repeats": [{key: run.get(key) for key in REPEAT_FIGURES} for run in runs],
    }


def _peer_row(scenario: str, metric: str, values: dict[str, Any]) -> dict[str, Any]:
    ratios = {
        f"{target}/{base}": _ratio(values.get(target), values.get(base))
        for base in BASES
        for target in PEER_TARGETS
        if target != base
    }
    return {"scenario": scenario, "metric": metric, "values": values, "ratios": ratios}


def summarize_peers(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure of the connect4 scenarios, a value per target and its ratio
    to the reference and to Colyseus."""
    rows = []
    conn = scenarios.get("c4connections", {})
    points = {t: _by_n(conn.get(t, {}).get("points")) for t in PEER_TARGETS}
    for n in sorted(set().union(*points.values())):
        values = {t: points[t].get(n, {}).get("kib_per_connection") for t in PEER_TARGETS}
        rows.append(_peer_row("c4connections", f"KiB per idle socket, N={n}", values))
    fan = scenarios.get("c4fanout", {})
    points = {t: _by_n(fan.get(t, {}).get("points")) for t in PEER_TARGETS}
    for n in sorted(set().union(*points.values())):
        for metric, read in FANOUT_FIGURES:
            values = {t: read(points[t][n]) if n in points[t] else None for t in PEER_TARGETS}
            rows.append(_peer_row("c4fanout", f"{metric}, N={n}", values))
    thr = scenarios.get("c4throughput", {})
    for metric, key in THROUGHPUT_FIGURES:
        values = {t: thr.get(t, {}).get(key) for t in PEER_TARGETS}
        rows.append(_peer_row("c4throughput", metric, values))
    return [r for r in rows if any(v is not None for v in r["values"].values())]


def peers_table(rows: list[dict[str, Any]], targets: list[str] | None = None) -> str:
    """Markdown: a column per target, then each target's ratio to the reference and to
    Colyseus (a ratio column only where both sides were run)."""
    shown = [t for t in PEER_TARGETS if targets is None or t in targets]
    ratios = [f"{t}/{base}" for base in BASES if base in shown for t in shown if t != base]
    header = ["scenario", "figure", *shown, *(r.replace("/", " / ") for r in ratios)]
    lines = ["| " + " | ".join(header) + " |",
             "| --- | --- |" + " ---: |" * (len(shown) + len(ratios))]  # fmt: skip
    for r in rows:
        cells = [r["scenario"], r["metric"], *(_cell(r["values"].get(t)) for t in shown)]
        cells += [_cell(r["ratios"].get(name)) for name in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    cell = _cell

    lines = ["| scenario | figure | gamesocket | reference | ratio | target | met |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['metric']} | {cell(r['ours'])} | {cell(r['reference'])} "
            f"| {cell(r['ratio'])} | {r['target']} | {cell(r['meets'])} |"
        )
    return "\n".join(lines)


def plot(scenarios: dict[str, Any], path: Path) -> bool:
    """Fan-out latency percentiles vs N and KiB per socket vs N; False if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(
        scenario: str, target: str, ok: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        points = scenarios.get(scenario, {}).get(target, {}).get("points", [])
        return [p for p in points if ok(p)]

    styles = {"gamesocket": "-", "reference": "--"}
    latency = {
        t: series("fanout", t, lambda p: bool(p.get("latency", {}).get("count"))) for t in styles
    }
    memory = {
        t: series("connections", t, lambda p: p.get("kib_per_connection", 0) > 0) for t in styles
    }
    if not any(latency.values()) and not any(memory.values()):
        return False
    figure, (latency_ax, memory_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {
        "p50_ms": "tab:green",
        "p95_ms": "tab:blue",
        "p99_ms": "tab:orange",
        "max_ms": "tab:red",
    }
    for target, style in styles.items():
        for key, colour in colours.items():
            latency_ax.plot(
                [p["n"] for p in latency[target]],
                [p["latency"][key] for p in latency[target]],
                style,
                marker="o",
                color=colour,
                label=f"{target} {key.removesuffix('_ms')}",
            )
        memory_ax.plot(
            [p["n"] for p in memory[target]],
            [p["kib_per_connection"] for p in memory[target]],
            style,
            marker="o",
            label=target,
        )
    log_latency = any(latency.values())
    log_memory = any(memory.values())
    latency_ax.set(
        xscale="log" if log_latency else "linear",
        yscale="log" if log_latency else "linear",
        xlabel="spectators of one game",
        ylabel="move sent -> update received (ms)",
        title="Fan-out latency (a move every 100 ms)",
    )
    latency_ax.legend(fontsize=7, ncol=2)
    latency_ax.grid(True, which="both", alpha=0.3)
    memory_ax.axhline(20, color="grey", linestyle=":", label="target 20 KiB")
    memory_ax.set(
        xscale="log" if log_memory else "linear",
        xlabel="idle sockets",
        ylabel="server RSS per socket (KiB)",
        title="Memory per idle connection",
    )
    memory_ax.legend(fontsize=8)
    memory_ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(result: dict[str, Any], out_dir: Path = RESULTS_DIR) -> tuple[Path, Path | None]:
    """`<out>/<UTC stamp>.json` and, when there is fan-out data, the matching PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["machine"]["date"].replace(":", "").replace("+0000", "Z")
    json_path = out_dir / f"{stamp}.json"
    png_path = out_dir / f"{stamp}.png"
    has_plot = plot(result["scenarios"], png_path)
    result["plot"] = png_path.name if has_plot else None
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return json_path, png_path if has_plot else None
