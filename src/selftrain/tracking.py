"""Experiment tracking: the loop's own numbers and the trainers' losses, on one step axis.

Every run writes `RUN/metrics.jsonl`: one line per logged point, `{"step", "stage", ...}`, a
file to plot with anything. `tracking.report_to` adds trackers (none by default): TensorBoard
(event files under `RUN/logs/tensorboard`), trackio, Weights & Biases, MLflow; each is an
optional extra, and a missing one is an error that names the extra to install.

The step is the run's: the optimizer steps of all its training stages so far, in the order
the loop runs them, so one curve spans SFT, every M-step and the baselines. Each finished
stage logs its record's numbers at the current step (an evaluation's accuracy, an E-step's
counts), and each training stage its logged losses at their own steps past that offset.
Tags drop a group's iteration number (`iter-03/evaluate/accuracy` is the curve
`iter/evaluate/accuracy`), so an iteration is a point on a curve, not a curve of its own.

The trainers get no `report_to` of their own: transformers' integrations would start a run
per training stage, each with its own step 0; the driver forwards their logs instead (from
each model folder's `train_log.json`), which also works for training in other processes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from selftrain.errors import ConfigError

EXTRAS = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow"}


def flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a (nested) record, keys joined with `/`; bools and text left out.

    >>> flat_numbers({"accuracy": 0.5, "by_bucket": {"1": 1.0}, "note": "x", "done": True})
    {'accuracy': 0.5, 'by_bucket/1': 1.0}
    """
    out: dict[str, float] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_numbers(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


def series(stage: str) -> str:
    """The curve a stage's numbers belong to: its group without the iteration number.

    >>> series("iter-03/evaluate"), series("grader-iter-01/train"), series("sft/train"), series("decontaminate")
    ('iter/evaluate', 'grader-iter/train', 'sft/train', 'decontaminate')
    """
    group, sep, name = stage.rpartition("/")
    return re.sub(r"-\d+$", "", group) + sep + name


class Tracker:
    """`RUN/metrics.jsonl` and the trackers `report_to` names, for one run (one process)."""

    def __init__(self, cfg, run_dir: Path, name: str, config: dict[str, Any]):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.logged = self._logged()
        self.backends = [self._open(kind, cfg, Path(run_dir), name, config) for kind in cfg.kinds()]

    def _logged(self) -> dict[str, str | None]:
        """The stages whose points an earlier process of this run already wrote, each with the
        fingerprint of the stage's run that made them (None in files of earlier versions)."""
        if not self.path.exists():
            return {}
        done: dict[str, str | None] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    done[row["stage"]] = row.get("fingerprint")
                except (ValueError, KeyError):
                    continue  # a line cut short by a kill
        return done

    def forget(self, stage: str) -> None:
        """Drop the points of an earlier run of `stage` (it was redone): metrics.jsonl then holds
        what the run's stages hold now, as metrics.json does."""
        from selftrain.artifacts import atomic_write_text

        if stage not in self.logged or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["stage"] == stage:
                    continue
            except (ValueError, KeyError):
                continue
            kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))
        del self.logged[stage]

    @staticmethod
    def _open(kind: str, cfg, run_dir: Path, name: str, config: dict[str, Any]):
        try:
            if kind == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                return _TensorBoard(SummaryWriter(log_dir=str(run_dir / "logs" / "tensorboard")))
            if kind == "trackio":
                import trackio

                trackio.init(project=cfg.project, name=name, config=config, auto_log_cpu=False, auto_log_gpu=False)
                return _Module(trackio, finish="finish")
            if kind == "wandb":
                import wandb

                wandb.init(project=cfg.project, name=name, config=config, dir=str(run_dir / "logs"))
                return _Module(wandb, finish="finish")
            if kind == "mlflow":
                import mlflow

                mlflow.set_experiment(cfg.project)
                mlflow.start_run(run_name=name)
                mlflow.log_params({k: str(v)[:250] for k, v in flat_config(config).items()})
                return _MLflow(mlflow)
        except ImportError as err:
            raise ConfigError(f"tracking.report_to names {kind}, which is not installed ({err}): "
                              f"pip install 'selftrain[{EXTRAS[kind]}]'") from None
        raise ConfigError(f"tracking.report_to: unknown tracker {kind!r} ({', '.join(EXTRAS)})")

    def log(self, stage: str, values: dict[str, float], step: int, fingerprint: str | None = None) -> None:
        """One point: a line of metrics.jsonl (with the fingerprint of the stage's run that made
        it), and each tracker's tags `<series>/<key>`."""
        if not values:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "stage": stage, "fingerprint": fingerprint, **values}) + "\n")
        self.logged[stage] = fingerprint
        tagged = {f"{series(stage)}/{k}": v for k, v in values.items()}
        for backend in self.backends:
            backend.log(tagged, step)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class _TensorBoard:
    def __init__(self, writer):
        self.writer = writer

    def log(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Module:
    """A tracker whose module logs a dict at a step (trackio, wandb)."""

    def __init__(self, module, finish: str):
        self.module, self.finish = module, finish

    def log(self, values: dict[str, float], step: int) -> None:
        self.module.log(values, step=step)

    def close(self) -> None:
        getattr(self.module, self.finish)()


class _MLflow:
    def __init__(self, mlflow):
        self.mlflow = mlflow

    def log(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()
