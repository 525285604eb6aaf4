"""One run context for what every method repeats: the run folder and its lock, torch
threads, the config copy, the task and its splits, the samplers, the stage bookkeeping.

A stage's output is an `Artifact`: where it lies and a fingerprint of everything it
depends on (its inputs' fingerprints and its own settings). Stage functions take and
return artifacts, so the fingerprints chain by themselves and a method's loop holds no
bookkeeping: a rerun skips each stage whose fingerprint is unchanged, and a changed
setting redoes exactly its stage and what follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from selftrain import ui
from selftrain.artifacts import RunDir, StageRecord, atomic_write_text, derive_seed, fingerprint
from selftrain.config import RunBase, SamplerConfig, TaskRun
from selftrain.records import Problem


@dataclass(frozen=True)
class Artifact:
    """A stage's output (a file or a model folder) and the fingerprint of what made it."""

    path: Path
    fp: str


@dataclass(frozen=True)
class Rows:
    """Training rows (prompt-completion dicts) loaded on demand, with a fingerprint;
    `a + b` is a's rows, then b's."""

    fp: str
    load: Callable[[], list[dict[str, Any]]]
    path: Path | None = None
    """The JSONL file the rows come from, when they come from one."""

    def __add__(self, other: Rows) -> Rows:
        return Rows(fingerprint("rows", self.fp, other.fp), lambda: self.load() + other.load())


class RunContext:
    """What a method's run function gets: the config, the run folder, the task's splits,
    samplers over model folders, and `stage` to run a step once."""

    def __init__(self, cfg: RunBase, run: RunDir):
        self.cfg, self.run = cfg, run
        self._sampler: tuple[str, Any] | None = None

    # the task and its splits, built on first use (the synthetic-data methods have none)
    @cached_property
    def task(self):
        from selftrain.tasks import build_task

        task = build_task(self.cfg.task)
        ui.say(f"task {task.name}: {len(task.human())} human, {len(task.pool())} pool, {len(task.test())} test problems")
        return task

    @property
    def human(self) -> list[Problem]:
        return self.task.human()

    @property
    def pool(self) -> list[Problem]:
        return self.task.pool()

    @property
    def test(self) -> list[Problem]:
        return self.task.test()

    @cached_property
    def data_fp(self) -> str:
        """The fingerprint of the task's problems (all three splits)."""
        return fingerprint(self.task.name, [p.to_json() for split in (self.human, self.pool, self.test) for p in split])

    @cached_property
    def grading_fp(self) -> str:
        """The fingerprint of every setting of the task, its verifier's and grader's included."""
        return fingerprint("task", self.cfg.task.model_dump())

    @cached_property
    def eval_items(self) -> list:
        """What training data must not overlap: the run's own test split and the public
        evaluation sets named in `decontaminate.against`."""
        from selftrain.decontamination import EvalItem, load_eval_set

        items = [EvalItem("test", p.id, p.prompt) for p in self.test] if isinstance(self.cfg, TaskRun) else []
        for name in self.cfg.decontaminate.against:
            items += load_eval_set(name, self.cfg.decontaminate.data)
        return items

    @cached_property
    def eval_index(self):
        from selftrain.decontamination import EvalIndex

        return EvalIndex(self.eval_items, self.cfg.decontaminate.n)

    @cached_property
    def grader(self):
        return self.task.grader()

    @property
    def max_length(self) -> int | None:
        """Training's longest sequence: the tiny model's context; None for a named model."""
        model = self.cfg.model
        return model.tiny.max_length if model.name_or_path is None else None

    def path(self, *parts: str) -> Path:
        return self.run.path(*parts)

    def seed(self, *parts: Any) -> int:
        """A seed of its own for each stage, derived from the run's seed."""
        return derive_seed(self.cfg.seed, *parts)

    def sampler(self, model: Artifact | str | Path, cfg: SamplerConfig | None = None):
        """A sampler over a model folder (the policy's backend unless `cfg` names another);
        one model in memory at a time, loaded once while it is the one asked for."""
        from selftrain.samplers import backend, make_sampler

        cfg = cfg or self.cfg.model.sampler
        path = model.path if isinstance(model, Artifact) else model
        key = fingerprint(str(path), cfg.model_dump())
        if self._sampler is None or self._sampler[0] != key:
            self.release_sampler()  # free the old model before loading the next
            if self.cfg.ray.address and "local" in backend(cfg.backend).abilities(cfg):
                from selftrain.cluster import RaySampler

                self._sampler = (key, RaySampler(self.cfg.ray, cfg, str(path)))
            else:
                self._sampler = (key, make_sampler(cfg, path, self.run.root))
        return self._sampler[1]

    def release_sampler(self) -> None:
        """Free the sampler's model now (an engine's memory, Ray workers), e.g. before training."""
        from selftrain.samplers import close

        held, self._sampler = self._sampler, None
        if held is not None:
            close(held[1])

    def stage(self, name: str, fp: str, work: Callable[[], dict[str, Any]]) -> StageRecord:
        """Run `work` as stage `name` unless it already finished with fingerprint `fp`;
        one line on the terminal either way, live bars while it works."""
        old = self.run.record(name)
        if old is not None and old.fingerprint == fp:
            ui.say(f"  [dim]skip[/dim] {name:<28} done before ({old.seconds:.0f} s)")
            return old
        with ui.stage_view(name):
            record = self.run.stage(name, fp, work, log=lambda text: None)
        counts = ", ".join(f"{k} {v}" for k, v in record.info.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        ui.say(f"  [green]done[/green] {name:<28} {record.seconds:6.1f} s  {counts}")
        return record


@contextmanager
def open_run(cfg: RunBase, out: str | Path) -> Iterator[RunContext]:
    """Hold the run folder, set torch threads, write `config.yaml` and the logs folder, and
    give the method its context."""
    from selftrain.models import set_torch_threads

    run = RunDir(out)
    with run.lock(), ui.run_logs(run.path("logs")):
        threads = set_torch_threads(cfg.model.torch_threads if isinstance(cfg, TaskRun) else None)
        ui.say(f"{cfg.method} · run folder {run.root} · torch threads {threads} · logs in {run.path('logs')}")
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        ctx = RunContext(cfg, run)
        try:
            yield ctx
        finally:
            ctx.release_sampler()
