"""Supervised fine-tuning with TRL's SFTTrainer, loss on the completion only.

The result is a Hugging Face folder (model, tokenizer, `train_log.json`), moved into place
only when training has finished, so a killed run never leaves a half-written model. With
LoRA (`lora_r`) it is the adapter alone (PEFT's folder, its base named in
`adapter_config.json`): an engine that holds the base serves it as a LoRA request, and
`selftrain.models.load_model` (so every sampler, `selftrain export`) merges it on load. An
adapter start with LoRA goes on training as itself, so every adapter of a run stays
relative to the same base. Under several processes (`training.launch`) only the main one
writes, and the others wait for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from selftrain.config import TrainConfig
from selftrain.errors import ConfigError
from selftrain.models import load_tokenizer
from selftrain.training.trainer import (
    base_of,
    is_main_process,
    keep_start,
    run_trainer,
    save_dtype,
    staging_dir,
    start_for_training,
    trainer_args,
)


def train_sft(
    start: str | Path,
    rows: list[dict[str, str]],
    cfg: TrainConfig,
    out: Path,
    seed: int,
    max_length: int | None = None,
    validation: Validation | None = None,
) -> dict[str, Any]:
    """Fine-tune the model at `start` on prompt-completion `rows`; save it to `out`.

    With `cfg.early_stopping`, the `validation` measure (the loss on its rows, or greedy
    accuracy on its problems) is taken every `early_stopping.every` steps; training stops
    after `patience` measurements without a new best, and the best weights are the ones
    saved. With no rows there is nothing to learn from: the start model is copied
    unchanged and the returned info says so.
    """
    import datasets
    from trl import SFTConfig, SFTTrainer

    tmp = staging_dir(out)
    if not rows:
        keep_start(start, tmp, out)
        return {"steps": 0, "examples": 0, "note": "no training data: start model copied"}
    tokenizer = load_tokenizer(start)
    model, lora = start_for_training(start, cfg)

    datasets.disable_progress_bars()
    stopping, watch = early_stopping_args(cfg, validation), None
    if cfg.early_stopping is not None and cfg.early_stopping.metric == "accuracy":
        watch = ValidationAccuracy(validation, tokenizer, cfg.early_stopping.every, cfg.early_stopping.patience)
    args = SFTConfig(
        **{**trainer_args(cfg, tmp, seed, len(rows)), **stopping},
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        max_length=max_length,
        completion_only_loss=True,
    )
    result, history = run_trainer(SFTTrainer, args, model, tokenizer, rows, tmp, out, lora, base=base_of(start), dtype=save_dtype(start),
                                  validation=validation.rows if stopping else None,
                                  patience=cfg.early_stopping.patience if stopping else None,
                                  callbacks=[watch] if watch else [])
    info = {
        "steps": int(result.global_step),
        "examples": len(rows),
        "train_loss": round(float(result.training_loss), 5),
        "final_loss": round(float(history[-1]["loss"]), 5) if history else None,
    }
    if stopping and is_main_process():
        evals = [h for h in json.loads((out / "train_log.json").read_text()) if "eval_loss" in h]
        best = min(evals, key=lambda h: h["eval_loss"]) if evals else {"step": result.global_step, "eval_loss": None}
        info.update(validation_rows=len(validation.rows), best_step=int(best["step"]), best_validation_loss=best["eval_loss"],
                    validation_losses=[[int(h["step"]), round(h["eval_loss"], 5)] for h in evals],
                    stopped_early=int(result.global_step) < cfg.steps_for(len(rows)))
    if watch is not None:
        info.update(validation_problems=len(validation.problems), best_step=watch.best_step,
                    best_validation_accuracy=watch.best, validation_accuracies=watch.history,
                    stopped_early=int(result.global_step) < cfg.steps_for(len(rows)))
    return info


@dataclass
class Validation:
    """What early stopping measures: the loss on `rows`, or the greedy accuracy on `problems`
    by `grader` (answers of at most `max_new_tokens`)."""

    rows: list[dict[str, Any]] | None = None
    problems: list[Any] | None = None
    grader: Any = None
    max_new_tokens: int = 64


class ValidationAccuracy(TrainerCallback):
    """Early stopping on greedy accuracy: every `every` steps the model in training answers
    the validation problems greedily (`HFSampler.of_loaded`) and the grader scores them; the
    best weights are kept (a copy in memory) and put back when training ends, which stops
    after `patience` measurements without a new best."""

    def __init__(self, validation: Validation, tokenizer, every: int, patience: int):
        if not validation or not validation.problems or validation.grader is None:
            raise ConfigError("early_stopping on accuracy needs validation problems and a grader: this stage has none")
        self.validation, self.tokenizer, self.every, self.patience = validation, tokenizer, every, patience
        self.best, self.best_step, self.best_state, self.waited = -1.0, 0, None, 0
        self.history: list[list[float]] = []

    def accuracy(self, model) -> float:
        from selftrain.records import SamplingParams
        from selftrain.samplers.hf import HFSampler

        was_training = model.training
        model.eval()
        padding = self.tokenizer.padding_side
        try:
            sampler = HFSampler.of_loaded(model, self.tokenizer, batch_size=256)
            sampler.tokenizer.padding_side = "left"
            v = self.validation
            answers = sampler.generate([p.prompt for p in v.problems], SamplingParams(temperature=0.0,
                                       max_new_tokens=v.max_new_tokens), 0)
        finally:
            self.tokenizer.padding_side = padding
            model.train(was_training)
        return sum(sc.accepted for sc in v.grader(v.problems, answers)) / len(v.problems)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every:
            return
        got = round(self.accuracy(model), 5)
        self.history.append([state.global_step, got])
        logging.getLogger("selftrain.train").info("step %d: validation accuracy %.4f", state.global_step, got)
        if got > self.best:
            self.best, self.best_step, self.waited = got, state.global_step, 0
            self.best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            self.waited += 1
            control.should_training_stop = self.waited >= self.patience

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not self.history:  # fewer steps than `every`: the weights trained are the ones kept, measured once
            self.best, self.best_step = round(self.accuracy(model), 5), state.global_step
            self.history.append([state.global_step, self.best])
        elif self.best_state is not None and state.global_step != self.best_step:
            model.load_state_dict(self.best_state)


def early_stopping_args(cfg: TrainConfig, validation: Validation | None) -> dict[str, Any]:
    """The trainer arguments of early stopping on the loss (none without it, or on accuracy):
    the held-out loss measured and a checkpoint saved every `every` steps, the best one
    loaded at the end."""
    if cfg.early_stopping is None or cfg.early_stopping.metric != "loss":
        return {}
    if not validation or not validation.rows:
        raise ConfigError("early_stopping on the loss needs validation rows: this training stage has none")
    every = cfg.early_stopping.every
    return dict(eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every, save_total_limit=2,
                load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
                per_device_eval_batch_size=cfg.batch_size)
