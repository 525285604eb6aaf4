"""Shared by the engine tests: a small arithmetic model trained once, so that greedy outputs
are well defined (a model at initialisation has near-ties everywhere)."""

from __future__ import annotations

from pathlib import Path


def trained_tiny(folder: Path, arch: str = "gpt2") -> tuple[Path, list]:
    """A 2-layer tiny model (`arch`) after 120 SFT steps on arithmetic worked solutions, and
    the task's test problems (1-3 digits)."""
    from selftrain.config import TinyModelConfig, TrainConfig
    from selftrain.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
    from selftrain.training.sft import train_sft
    from selftrain.training.tiny import save_tiny

    task = ArithmeticTask(ArithmeticConfig(human_size=400, pool_size=48, test_per_bucket=40, test_digits=[1, 2, 3]))
    tiny = TinyModelConfig(arch=arch, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_length=96)
    save_tiny(folder / "init", tiny, seed=0)
    rows = [{"prompt": p.prompt, "completion": p.solution} for p in task.human()]
    train_sft(folder / "init", rows, TrainConfig(steps=120, batch_size=32, learning_rate=3e-3, logging_steps=60),
              folder / "model", seed=0, max_length=96)
    return folder / "model", task
