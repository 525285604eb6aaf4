"""Running a method, and the results a person reads: `RUN/metrics.json`, `RUN/report.html`,
and a dataset card (`README.md`) beside every `data.jsonl` (`selftrain.data.cards`).

Both are rebuilt from the files the stages wrote, so `selftrain report RUN` works on a
finished run, on a run still going, and on a run copied from another machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from selftrain.artifacts import RunDir, atomic_write_text, read_json, write_json
from selftrain.data.cards import write_cards
from selftrain.data.profile import profiles
from selftrain.data.profile import render as render_profiles
from selftrain.errors import SelftrainError
from selftrain.methods import get_method, parse_config
from selftrain.stages.context import open_run


def default_out(cfg) -> Path:
    return Path("runs") / f"{cfg.name}-seed{cfg.seed}"


def run_method(cfg, out: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the method `cfg` names in the folder `out`; returns the metrics."""
    method = get_method(cfg.method)
    out = Path(out) if out is not None else default_out(cfg)
    start = time.perf_counter()
    with open_run(cfg, out) as ctx:
        if hasattr(cfg, "task"):
            ctx.task  # noqa: B018 - the task's data are read (and checked) before any stage runs
        method.run(ctx)
        _, metrics = publish(out, time.perf_counter() - start)
    return metrics


def write_report(run_dir: str | Path) -> Path:
    """Rebuild `metrics.json` and `report.html` from a run folder; returns the page's path."""
    return publish(run_dir)[0]


def publish(run_dir: str | Path, wall_seconds: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Collect a run's metrics once, write `metrics.json` and `report.html`; returns both.

    `wall_seconds` is the finishing process's time; without it, the one already recorded
    in `metrics.json` is kept."""
    run = RunDir(run_dir)
    cfg_path = run.path("config.yaml")
    if not cfg_path.exists():
        raise SelftrainError(f"{run.root} is not a run folder (no config.yaml)")
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()), str(cfg_path))
    method = get_method(cfg.method)
    metrics = method.collect(run, cfg)
    metrics["data"] = profiles(run.root)
    metrics_path = run.path("metrics.json")
    if wall_seconds is not None:
        metrics["wall_seconds_this_process"] = round(wall_seconds, 1)
    elif metrics_path.exists():
        old = read_json(metrics_path)
        if "wall_seconds_this_process" in old:
            metrics["wall_seconds_this_process"] = old["wall_seconds_this_process"]
    write_json(metrics_path, metrics)
    page = run.path("report.html")
    atomic_write_text(page, method.render(metrics).replace("</body>", render_profiles(metrics["data"]) + "\n</body>"))
    write_cards(run, cfg)
    return page, metrics


def summary(metrics: dict[str, Any]) -> list[str]:
    return get_method(metrics["method"]).summary(metrics)
