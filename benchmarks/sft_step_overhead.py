"""Where TRL's SFTTrainer time goes on a CPU: ms/step of a plain PyTorch loop against
SFTTrainer as selftrain configures it, and against SFTTrainer with TRL's own defaults
(bf16 autocast and gradient checkpointing on), on the same model and data; and
SFTTrainer as selftrain configures it on the same model built with GPT-2's own dropout
(0.1) and activation (`gelu_new`), which the tiny model used before.

    python benchmarks/sft_step_overhead.py [--steps 20] [--batch-size 64]

Prints ms/step for each and the ratio to the plain loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import datasets
import torch
from trl import SFTConfig, SFTTrainer

from selftrain.config import TrainConfig
from selftrain.methods.rest_em import RestEMConfig
from selftrain.models import load_model, load_tokenizer, set_torch_threads
from selftrain.tasks import build_task
from selftrain.training.tiny import save_tiny


def sft_config(folder: Path, steps: int, batch: int, **extra) -> SFTConfig:
    return SFTConfig(
        output_dir=str(folder / "trainer"), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=1e-3, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
        logging_steps=10_000, max_length=96, **extra,
    )


def time_trainer(model_dir: Path, rows, args: SFTConfig) -> float:
    trainer = SFTTrainer(
        model=load_model(model_dir), args=args, train_dataset=datasets.Dataset.from_list(rows),
        processing_class=load_tokenizer(model_dir),
    )
    t = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - t) / args.max_steps * 1000


def time_plain(model_dir: Path, rows, args: SFTConfig) -> float:
    """The same batches as the trainer's dataloader, through forward/backward/AdamW."""
    trainer = SFTTrainer(
        model=load_model(model_dir), args=args, train_dataset=datasets.Dataset.from_list(rows),
        processing_class=load_tokenizer(model_dir),
    )
    batches = [b for _, b in zip(range(args.max_steps), iter(trainer.get_train_dataloader()))]
    model = load_model(model_dir).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t = time.perf_counter()
    for b in batches:
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - t) / len(batches) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    args = ap.parse_args()
    set_torch_threads(None)
    datasets.disable_progress_bars()
    cfg = RestEMConfig()
    rows = [{"prompt": p.prompt, "completion": p.solution} for p in build_task(cfg.task).human()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_tiny(folder / "model", cfg.model.tiny, 0)
        # The same model with GPT-2's own dropout (0.1) and activation (gelu_new).
        save_tiny(folder / "gpt2-own", cfg.model.tiny.model_copy(update={"dropout": 0.1, "activation": "gelu_new"}), 0)
        ours = dict(bf16=False, gradient_checkpointing=False, train_sampling_strategy="random")
        plain = time_plain(folder / "model", rows, sft_config(folder, args.steps, args.batch_size, **ours))
        results = {
            "plain PyTorch loop": plain,
            "SFTTrainer, selftrain's settings": time_trainer(folder / "model", rows, sft_config(folder, args.steps, args.batch_size, **ours)),
            "SFTTrainer, TRL defaults": time_trainer(folder / "model", rows, sft_config(folder, max(2, args.steps // 4), args.batch_size)),
            "SFTTrainer, ours, GPT-2 dropout+gelu_new": time_trainer(folder / "gpt2-own", rows, sft_config(folder, args.steps, args.batch_size, **ours)),
        }
    for name, ms in results.items():
        print(f"{name:<42} {ms:8.0f} ms/step   {ms / plain:5.2f}x the plain loop")


if __name__ == "__main__":
    main()
