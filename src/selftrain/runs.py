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
from selftrain.methods import complete, get_method, parse_config
from selftrain.stages.context import open_run


def default_out(cfg) -> Path:
    return Path("runs") / f"{cfg.name}-seed{cfg.seed}"


def run_method(cfg, out: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the method `cfg` names in the folder `out`; returns the metrics."""
    method = get_method(cfg.method)
    cfg = complete(cfg)
    out = Path(out) if out is not None else default_out(cfg)
    start = time.perf_counter()
    with open_run(cfg, out) as ctx:
        if hasattr(cfg, "task"):
            ctx.task  # noqa: B018 - the task's data are read (and checked) before any stage runs
        method.run(ctx)
        ctx.save_engines()
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
    engines = engine_counts(run.root)
    if engines:
        metrics["engines"] = engines
    errors = verifier_error_counts(run.root)
    if errors:
        metrics["verifier_errors"] = errors
    metrics_path = run.path("metrics.json")
    if wall_seconds is not None:
        metrics["wall_seconds_this_process"] = round(wall_seconds, 1)
    elif metrics_path.exists():
        old = read_json(metrics_path)
        if "wall_seconds_this_process" in old:
            metrics["wall_seconds_this_process"] = old["wall_seconds_this_process"]
    write_json(metrics_path, metrics)
    page = run.path("report.html")
    extra = render_profiles(metrics["data"]) + render_engines(engines) + render_verifier_errors(errors)
    atomic_write_text(page, method.render(metrics).replace("</body>", extra + "\n</body>"))
    write_cards(run, cfg)
    return page, metrics


def engine_counts(run_dir: Path) -> dict[str, int]:
    """How the run's models were served, over every process of it (`RUN/engines.jsonl`):
    sampler starts (a vLLM engine, or a model loaded), LoRA swaps, in-place reloads."""
    import json
    from collections import Counter

    path = Path(run_dir) / "engines.jsonl"
    total: Counter = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            total.update({k: v for k, v in json.loads(line).items() if k != "pid"})
    return dict(total)


def verifier_error_counts(run_dir: Path) -> dict[str, int]:
    """Verdicts left unjudged because the checker itself failed (math-verify's exceptions by
    name, timeouts), over every scores.jsonl of the run."""
    from collections import Counter

    from selftrain.stages.score import load_scores, verifier_errors

    total: Counter = Counter()
    for path in sorted(Path(run_dir).glob("**/scores.jsonl")):
        total.update(verifier_errors(load_scores(path)))
    return dict(sorted(total.items()))


def render_verifier_errors(errors: dict[str, int]) -> str:
    if not errors:
        return ""
    return ("<p>Unjudged because the checker failed: " + ", ".join(f"{name} {n}" for name, n in errors.items())
            + " (the samples' scores.jsonl give each reason).</p>")


def render_engines(engines: dict[str, int]) -> str:
    if not engines:
        return ""
    return (f"<p>Models served: {engines.get('start', 0)} sampler starts (an engine started or a model loaded), "
            f"{engines.get('lora', 0)} LoRA adapters served by the engine already up, "
            f"{engines.get('reload', 0)} checkpoints loaded into it in place (RUN/engines.jsonl).</p>")


def summary(metrics: dict[str, Any]) -> list[str]:
    return get_method(metrics["method"]).summary(metrics)
