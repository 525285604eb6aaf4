"""The run context: what every method repeats, done once. It holds the run folder and its
lock, torch threads, the config copy, the task and its splits, the samplers, and the stage
bookkeeping; the stages use it, the method's loop passes it on.

A stage's output is an `Artifact`: where it lies and a fingerprint of everything it
depends on (its inputs' fingerprints and its own settings). Stage functions take and
return artifacts, so the fingerprints chain by themselves and a method's loop holds no
bookkeeping: a rerun skips each stage whose fingerprint is unchanged, and a changed
setting redoes exactly its stage and what follows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from selftrain import ui
from selftrain.artifacts import RunDir, StageRecord, atomic_write_text, derive_seed, fingerprint
from selftrain.config import RunBase, SamplerConfig, TaskRun
from selftrain.records import Problem, Score


@dataclass(frozen=True)
class Artifact:
    """A stage's output and the fingerprint of what made it: its main file or folder (`path`)
    and, by name, the files a reader may need (`files`: those it wrote, and the input it
    stands beside, e.g. a score stage's `samples`). Readers ask by name (`scores["samples"]`),
    never by file name."""

    path: Path
    fp: str
    named: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def of(cls, fp: str, main: str, **files: Path) -> Artifact:
        """An artifact whose main file is `files[main]`.

        >>> a = Artifact.of("f00", "scores", scores=Path("s.jsonl"), samples=Path("x.jsonl"))
        >>> a.path.name, a["samples"].name, a.part("samples").path.name
        ('s.jsonl', 'x.jsonl', 'x.jsonl')
        """
        return cls(Path(files[main]), fp, tuple(sorted((k, Path(v)) for k, v in files.items())))

    @property
    def files(self) -> dict[str, Path]:
        return dict(self.named) or {"main": self.path}

    def __getitem__(self, name: str) -> Path:
        files = self.files
        if name not in files:
            raise KeyError(f"{self.path} carries no {name!r} file (it carries: {', '.join(files)})")
        return files[name]

    def rows(self, name: str) -> Path:
        """The file of rows named `name`, or, for an artifact that names no such file, its main
        file (a filter's kept rows given where samples are read).

        >>> Artifact(Path("kept.jsonl"), "f00").rows("samples").name
        'kept.jsonl'
        """
        return dict(self.named).get(name, self.path)

    def part(self, name: str) -> Artifact:
        """One of its files as an artifact of its own (the same fingerprint and files)."""
        return Artifact(self[name], self.fp, self.named)


@dataclass(frozen=True)
class Rows:
    """Training rows (prompt-completion dicts) loaded on demand, with a fingerprint;
    `a + b` is a's rows, then b's. `sources` names where they come from (a file of the run
    folder, or `human`), for the training stage's record."""

    fp: str
    load: Callable[[], list[dict[str, Any]]]
    path: Path | None = None
    """The JSONL file the rows come from, when they come from one."""
    sources: tuple[str, ...] = ()

    def __add__(self, other: Rows) -> Rows:
        return Rows(fingerprint("rows", self.fp, other.fp), lambda: self.load() + other.load(),
                    sources=self.sources + other.sources)


def group(kind: str, t: int, prefix: str = "") -> str:
    """The run subfolder of iteration (or round) `t` of a loop; a second loop in the same run
    (a control) names its own with `prefix`. Methods name groups here, in `run` and in
    `collect` alike.

    >>> group("iter", 1), group("round", 12), group("iter", 3, "flat-")
    ('iter-01', 'round-12', 'flat-iter-03')
    """
    return f"{prefix}{kind}-{t:02d}"


def file_of(name: str, usual: str, file: str) -> str:
    """The file a stage writes: `file` when it has its usual name, else `<name>.jsonl`, so two
    stages of a kind in one group (a second judge, an anchor's responses) never share one.

    >>> file_of("generate", "generate", "samples.jsonl"), file_of("eft-answers", "generate", "samples.jsonl")
    ('samples.jsonl', 'eft-answers.jsonl')
    """
    return file if name == usual else f"{name}.jsonl"


C = TypeVar("C", bound=RunBase)


def _leaves(data: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _leaves(v, k)]
    if isinstance(data, list):
        return [leaf for v in data for leaf in _leaves(v, key)]
    return [(key, data)]


class RunContext(Generic[C]):
    """What a method's run function gets: its config (typed: `RunContext[RestEMConfig]`), the
    run folder, the task's splits, samplers over model folders, and `stage` to run a step once.
    Stages take the settings they use as arguments; the context gives them only what is the
    run's as a whole: the task, the seed, the policy's sampler, the evaluation sets."""

    def __init__(self, cfg: C, run: RunDir, tracker=None):
        self.cfg: C = cfg
        self.run = run
        self.tracker = tracker
        self.step = 0
        """The run's step: optimizer steps of its training stages so far (`selftrain.tracking`)."""
        from selftrain.samplers.engine import Engines

        ranks = [v for k, v in _leaves(cfg.model_dump()) if k == "lora_r" and v]
        self.serving = Engines(run.root, cfg.ray, max(ranks) if ranks else None, self.context_tokens, self.turns)
        """The engine lifecycle (`samplers.engine`): which sampler serves which model, and its counts."""

    # the task and its splits, built on first use (the synthetic-data methods have none)
    @cached_property
    def task(self):
        from selftrain.tasks import build_task

        task = build_task(self.cfg.task)
        ui.say(f"task {task.name}: {len(task.human())} human, {len(task.pool())} pool, {len(task.test())} test problems")
        return task

    @property
    def allow_empty(self) -> bool:
        """Whether a stage that made nothing lets the run go on (`allow_empty_stages`)."""
        return self.cfg.allow_empty_stages

    @property
    def task_spec(self) -> tuple[str, dict[str, Any]]:
        """The task's name and settings, from which another process builds the same task."""
        return self.cfg.task.name, self.cfg.task.settings

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
    def grader(self):
        """What evaluation counts as right: the task's grader."""
        return self.task.grader()

    @property
    def policy(self) -> SamplerConfig:
        """How the policy and every checkpoint of the run are sampled (`model.sampler`)."""
        return self.cfg.model.sampler

    @property
    def max_length(self) -> int | None:
        """Training's longest sequence: the tiny model's context; None for a named model."""
        model = self.cfg.model
        return model.tiny.max_length if model.name_or_path is None else None

    @cached_property
    def contamination(self):
        """The evaluation items no training row may overlap (`decontaminate:`): the run's own
        test split and the public sets named in `decontaminate.against`."""
        from selftrain.data.decontamination import Contamination, EvalItem
        from selftrain.tasks import eval_set

        settings = self.cfg.decontaminate
        items = [EvalItem("test", p.id, p.prompt) for p in self.test] if isinstance(self.cfg, TaskRun) else []
        for name in settings.against:
            items += eval_set(name, settings.data)
        return Contamination(settings.enabled, settings.n, tuple(items))

    def path(self, *parts: str) -> Path:
        return self.run.path(*parts)

    @property
    def run_seed(self) -> int:
        """The run's own seed (`seed:`); stages draw theirs from it (`seed`)."""
        return self.cfg.seed

    def seed(self, *parts: Any) -> int:
        """A seed of its own for each stage, derived from the run's seed."""
        return derive_seed(self.cfg.seed, *parts)

    def sampler(self, model: Artifact | str | Path, cfg: SamplerConfig | None = None):
        """A sampler over a model folder (the policy's backend unless `cfg` names another),
        from the run's engines (`samplers.engine.Engines`: one engine per run where the
        weights allow it, one model in memory at a time)."""
        return self.serving.sampler(model.path if isinstance(model, Artifact) else model, cfg or self.policy)

    @property
    def engines(self) -> Counter:
        """What this process did to serve each model (`start`, `lora`, `reload`)."""
        return self.serving.counts

    def save_engines(self) -> None:
        """This process's counts of how it served its models -> one line of RUN/engines.jsonl."""
        self.serving.save_counts(self.run.path("engines.jsonl"))

    def rest_sampler(self) -> None:
        """Training is about to run: an engine that can rest keeps its model (asleep on a GPU,
        as it is on a CPU); any other sampler frees its memory."""
        self.serving.rest()

    def release_sampler(self) -> None:
        """Free the sampler's model now (an engine's memory, Ray workers), e.g. before training."""
        self.serving.release()

    def context_tokens(self) -> int | None:
        """The run's longest prompt and completion in tokens, as a vLLM engine on a GPU needs
        its context (`samplers.engine.resolve`): twice the longest task prompt with the chat
        turns, plus the largest `max_new_tokens` of the config, at least 2,048 (judge prompts
        and written problems are longer than the task's); None for a run without a task."""
        if not isinstance(self.cfg, TaskRun):
            return None
        from selftrain.models import load_tokenizer

        tok = load_tokenizer(self.cfg.model.name_or_path) if self.cfg.model.name_or_path else None
        texts = [p.prompt for split in (self.human, self.pool, self.test) for p in split]
        turns = "".join(u + a for u, a in self.turns(self.policy)) + (self.policy.system or "")
        longest = max((len(tok(turns + t)["input_ids"]) if tok else len(turns + t) for t in texts), default=0)
        new = max((v for k, v in _leaves(self.cfg.model_dump()) if k == "max_new_tokens" and isinstance(v, int)), default=0)
        return max(2048, 2 * (longest + new))

    def turns(self, cfg: SamplerConfig) -> list[tuple[str, str]]:
        """A chat sampler's few-shot turns: the task's first `fewshot` worked solutions."""
        if not (cfg.chat and cfg.fewshot):
            return []
        shots = [(p.prompt, p.solution) for p in self.human if p.solution][: cfg.fewshot]
        if len(shots) < cfg.fewshot:
            from selftrain.errors import ConfigError

            raise ConfigError(f"sampler.fewshot is {cfg.fewshot}, but the task has {len(shots)} worked solutions")
        return shots

    def chat_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Training rows as the policy is sampled: with `chat`, conversational (the prompt as
        the last user turn after the system and few-shot turns, the completion the assistant's
        turn: TRL applies the chat template, the loss on the completion only); else as they are."""
        if not self.policy.chat:
            return rows
        from selftrain.samplers.chat import chat_messages

        turns = self.turns(self.policy)
        return [{"prompt": chat_messages(r["prompt"], self.policy.system, turns),
                 "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]

    def verify(self, verifier, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        """`verifier(problems, completions)`, spread over the run's Ray cluster when it has one."""
        from selftrain.samplers import run_verifier

        if self.cfg.ray.address:
            self.release_sampler()  # the sampler workers hold cluster resources the verifier's tasks need
        return run_verifier(verifier, problems, completions, self.cfg.ray)

    def stage(self, name: str, fp: str, work: Callable[[], dict[str, Any]],
              outputs: dict[str, Path] | None = None) -> StageRecord:
        """Run `work` as stage `name` unless it already finished with fingerprint `fp` and its
        `outputs` (the files it writes, by name) are in place; one line on the terminal either
        way, live bars while it works."""
        old, _ = self.run.reusable(name, fp, outputs)
        if old is not None:
            ui.say(f"  [dim]skip[/dim] {name:<28} done before ({old.seconds:.0f} s)")
            self._track(name, old)
            return old
        with ui.stage_view(name):
            record = self.run.stage(name, fp, work, log=lambda text: None, outputs=outputs)
        counts = ", ".join(f"{k} {v}" for k, v in record.info.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        ui.say(f"  [green]done[/green] {name:<28} {record.seconds:6.1f} s  {counts}")
        self._track(name, record)
        return record

    def _track(self, name: str, record: StageRecord) -> None:
        """A finished stage's numbers to the trackers: a training stage's logged losses at
        their steps past the run's step so far, then the record at the step after it. A
        stage an earlier process of the run logged only moves the step on."""
        from selftrain.artifacts import read_json
        from selftrain.tracking import flat_numbers

        trained = "start" in record.info and isinstance(record.info.get("steps"), int)
        offset = self.step
        if trained:
            self.step += record.info["steps"]
        if self.tracker is None or (name in self.tracker.logged and self.tracker.logged[name] in (record.fingerprint, None)):
            return
        self.tracker.forget(name)  # a stage redone: its old points go
        log = self.run.path(name.rpartition("/")[0], "model", "train_log.json")
        if trained and log.is_file():
            for entry in read_json(log):
                if "step" in entry and "train_runtime" not in entry:
                    values = flat_numbers({k: v for k, v in entry.items() if k not in ("step", "epoch")})
                    self.tracker.log(name, values, offset + int(entry["step"]), record.fingerprint)
        self.tracker.log(name, flat_numbers(record.info), self.step, record.fingerprint)

    def relative(self, path: Path) -> str:
        """A path as a record names it: inside the run folder relative to it, else as given."""
        try:
            return str(Path(path).resolve().relative_to(self.run.root.resolve()))
        except ValueError:
            return str(path)


@contextmanager
def open_run(cfg: C, out: str | Path) -> Iterator[RunContext[C]]:
    """Hold the run folder, set torch threads, write `config.yaml` and the logs folder, and
    give the method its context."""
    from selftrain.models import set_torch_threads

    run = RunDir(out)
    with run.lock(), ui.run_logs(run.path("logs")):
        threads = set_torch_threads(cfg.model.torch_threads if isinstance(cfg, TaskRun) else None)
        ui.say(f"{cfg.method} · run folder {run.root} · torch threads {threads} · logs in {run.path('logs')}")
        atomic_write_text(run.path("config.yaml"), cfg.to_yaml())
        from selftrain.tracking import Tracker

        name = cfg.tracking.run_name or f"{cfg.name}-seed{cfg.seed}"
        tracker = Tracker(cfg.tracking, run.root, name, cfg.model_dump(mode="json"))
        ctx = RunContext(cfg, run, tracker)
        try:
            yield ctx
        finally:
            ctx.release_sampler()
            tracker.close()
            ctx.save_engines()
