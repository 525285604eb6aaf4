"""The train stages: the tiny model built, SFT (TRL's SFTTrainer) and DPO (DPOTrainer),
each into RUN/<group>/model, a plain Hugging Face folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_json, read_jsonl
from selftrain.config import DPOConfig, ModelConfig, TinyModelConfig, TrainConfig
from selftrain.errors import ConfigError
from selftrain.records import Pair, Problem
from selftrain.stages.context import Artifact, Rows, RunContext


def _freed(ctx: RunContext, train: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """`train`, after the run's sampler has made room (`RunContext.rest_sampler`: an engine
    sleeps on a GPU, any other sampler frees its model)."""

    def work() -> dict[str, Any]:
        ctx.rest_sampler()
        return train()

    return work


def build_tiny(ctx: RunContext, group: str, tiny: TinyModelConfig, seed: int) -> Artifact:
    """The tiny model as built (random weights) -> RUN/<group>/model."""
    from selftrain.training.tiny import save_tiny

    folder, fp = ctx.path(group, "model"), fingerprint("tiny", tiny.model_dump(), seed)
    ctx.stage(f"{group}/build", fp, lambda: {"parameters": save_tiny(folder, tiny, seed)}, outputs={"model": folder})
    return Artifact.of(fp, "model", model=folder)


def external_model(name_or_path: str, *settings: Any) -> Artifact:
    """A model the run does not make: a folder, a hub name, or an endpoint's model (then
    `settings`, the teacher's sampler settings, stand for it in fingerprints too)."""
    return Artifact(Path(name_or_path), fingerprint("named", name_or_path, *settings))


def start_model(ctx: RunContext, model: ModelConfig) -> Artifact:
    """The model a run starts from: `model.name_or_path`, or the tiny model built in RUN/init
    (initialised with the run's seed)."""
    if model.name_or_path is not None:
        return external_model(model.name_or_path)
    return build_tiny(ctx, "init", model.tiny, ctx.run_seed)


def human_rows(ctx: RunContext) -> Rows:
    """The task's worked solutions as training rows (none for a task without them)."""
    return Rows(ctx.data_fp, lambda: [{"prompt": p.prompt, "completion": p.solution} for p in ctx.human if p.solution],
                sources=("human",))


def made_rows(make: Callable[[], list[dict[str, Any]]], *inputs: Any, sources: tuple[str, ...] = ()) -> Rows:
    """Training rows a method makes from its inputs (artifacts, rows, settings), loaded on
    demand; their fingerprint comes from the inputs and from `make` itself (its source)."""
    parts = [i.fp if isinstance(i, (Artifact, Rows)) else i for i in inputs]
    return Rows(fingerprint("made-rows", describe(make), parts), make, sources=sources)


def _inputs(ctx: RunContext, start: Artifact, data: tuple[str, ...]) -> dict[str, Any]:
    """What a training stage's record says it started from and trained on."""
    return {"start": ctx.relative(start.path), "data": list(data)}


def sft(ctx: RunContext, group: str, start: Artifact, rows: Rows, cfg: TrainConfig, max_length: int | None = None,
        name: str = "train", validation: Rows | None = None, validation_problems: Sequence[Problem] = (),
        max_new_tokens: int = 64) -> Artifact:
    """SFT from `start` on `rows` -> RUN/<group>/model (no rows: the start model, copied);
    with `cfg.early_stopping`, until the loss on the `validation` rows (or the greedy
    accuracy on `validation_problems`, graded by the task's grader, answers of at most
    `max_new_tokens`) stops improving. The record names the start model and the rows' sources."""
    from selftrain.training.launch import launched
    from selftrain.training.sft import train_sft

    out = ctx.path(group, "model")
    seed = ctx.seed(group)
    served = ctx.policy.model_dump(include={"chat", "system", "fewshot"}) if ctx.policy.chat else None
    stopping = cfg.early_stopping
    held_out: list[Any] = []
    if stopping is not None:
        held_out = [validation.fp if validation else None] if stopping.metric == "loss" else \
            [[p.to_json() for p in validation_problems], describe(ctx.grader), max_new_tokens]
    fp = fingerprint("sft", start.fp, rows.fp, cfg.model_dump(), seed, served, *held_out)
    length = max_length or ctx.max_length
    if stopping is not None and cfg.launched:
        raise ConfigError(f"{group}: early_stopping trains in the run's own process; unset launch for it")

    def train() -> dict[str, Any]:
        from selftrain.training.sft import Validation

        data = ctx.chat_rows(rows.load())
        if cfg.launched:
            return launched("sft", start.path, data, cfg, out, seed, _log(ctx, group), max_length=length)
        held = None
        if stopping is not None:
            held = Validation(rows=ctx.chat_rows(validation.load()) if validation and stopping.metric == "loss" else None,
                              problems=list(validation_problems), grader=ctx.grader, max_new_tokens=max_new_tokens)
        return train_sft(start.path, data, cfg, out, seed, length, held)

    ctx.stage(f"{group}/{name}", fp, _freed(ctx, lambda: {**_inputs(ctx, start, rows.sources), **train()}),
              outputs={"model": out})
    return Artifact.of(fp, "model", model=out)


def _log(ctx: RunContext, group: str) -> Path:
    return ctx.path("logs", f"{group.replace('/', '-')}-train.log")


def prompt_rows(pair: Pair) -> dict[str, Any]:
    """A preference pair as raw-text DPO rows."""
    return pair.dpo_row()


def chat_rows(pair: Pair) -> dict[str, Any]:
    """A preference pair as conversational DPO rows (the chat template applies)."""
    return {"prompt": [{"role": "user", "content": pair.prompt}],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}]}


def dpo(ctx: RunContext, group: str, start: Artifact, pairs: Artifact, cfg: DPOConfig,
        row: Callable[[Pair], dict[str, Any]] = prompt_rows, open_ended: bool = False,
        consistency: Artifact | None = None) -> Artifact:
    """DPO from `start` (also the frozen reference) on the pairs -> RUN/<group>/model;
    `open_ended`: the rows' responses go on past what they hold (no end-of-sequence);
    `consistency`: a `stages.consistency` file whose rate C makes CREAM's soft labels."""
    from selftrain.training.dpo import train_dpo
    from selftrain.training.launch import launched

    out = ctx.path(group, "model")
    seed = ctx.seed(group)
    fp = fingerprint("dpo", start.fp, pairs.fp, cfg.model_dump(), describe(row), open_ended, seed,
                     *([consistency.fp] if consistency else []))

    def train() -> dict[str, Any]:
        data = [row(Pair.from_json(r)) for r in read_jsonl(pairs.path)]
        settings = dict(beta=cfg.beta, max_length=ctx.max_length, nll_weight=cfg.nll_weight, loss_type=cfg.loss_type,
                        open_ended=open_ended)
        if consistency is not None:
            settings["consistency"] = read_json(consistency.path)["consistency"]
        if cfg.launched:
            return launched("dpo", start.path, data, cfg, out, seed, _log(ctx, group), **settings)
        return train_dpo(start.path, data, cfg, out, seed, **settings)

    ctx.stage(f"{group}/train", fp, _freed(ctx, lambda: {**_inputs(ctx, start, (ctx.relative(pairs.path),)), **train()}),
              outputs={"model": out})
    return Artifact.of(fp, "model", model=out)
