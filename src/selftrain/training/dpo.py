"""Direct preference optimisation with TRL's DPOTrainer (Rafailov et al. 2023).

Rows are preference pairs: `{"prompt", "chosen", "rejected"}`. The reference model is the
start model, frozen (TRL makes the copy; of an adapter start, a frozen copy of the adapter).
The result is a Hugging Face folder (with LoRA, the adapter alone), moved into place only
when training has finished, as for SFT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selftrain.config import TrainConfig
from selftrain.models import load_tokenizer
from selftrain.training.trainer import base_of, keep_start, run_trainer, save_dtype, staging_dir, start_for_training, trainer_args


def train_dpo(
    start: str | Path,
    rows: list[dict[str, str]],
    cfg: TrainConfig,
    out: Path,
    seed: int,
    beta: float = 0.1,
    max_length: int | None = None,
    nll_weight: float = 0.0,
    loss_type: str = "sigmoid",
    open_ended: bool = False,
    consistency: float | None = None,
) -> dict[str, Any]:
    """DPO from the model at `start` on preference `rows`; save the policy to `out`.

    `nll_weight` > 0 adds the negative log-likelihood of the chosen response, so weighted
    (TRL's `sft` loss beside `sigmoid`: the DPO + NLL loss of Iterative RPO, Pang et al.
    2024); 0 is plain DPO. `loss_type` is TRL's preference loss. `open_ended` rows are
    pieces of responses that go on (step-level pairs: one step each): the end-of-sequence
    token TRL appends to chosen and rejected is left out of training. With no pairs there
    is nothing to learn from: the start model is copied unchanged.

    `consistency` C (CREAM, arXiv 2410.12735) makes soft labels: the loss is
    C * DPO(chosen, rejected) + (1 - C) * DPO(rejected, chosen). TRL 1.16's `sigmoid` loss
    ignores `label_smoothing`, so it is assembled from two of TRL's own losses: with
    eps = 1 - C, `robust` is ((1 - eps) A - eps B) / (1 - 2 eps) for A = DPO(chosen,
    rejected), B = DPO(rejected, chosen), and 2C * sigmoid + (1 - 2C) * robust = C A + (1 - C) B
    exactly (`cream_losses`).
    """
    import datasets
    from trl import DPOConfig, DPOTrainer

    tmp = staging_dir(out)
    if not rows:
        keep_start(start, tmp, out)
        return {"steps": 0, "pairs": 0, "note": "no preference pairs: start model copied"}
    tokenizer = load_tokenizer(start)
    model, lora = start_for_training(start, cfg)  # an adapter start: TRL freezes a copy of it as the reference
    missing = {"prompt", "chosen", "rejected"} - set(rows[0])
    if missing:
        raise ValueError(f"DPO rows need prompt, chosen and rejected; missing {sorted(missing)}")

    datasets.disable_progress_bars()
    losses = cream_losses(consistency, loss_type) if consistency is not None else {"loss_type": [loss_type], "loss_weights": [1.0]}
    if nll_weight > 0:
        losses = {**losses, "loss_type": losses["loss_type"] + ["sft"], "loss_weights": losses["loss_weights"] + [nll_weight]}
    args = DPOConfig(**trainer_args(cfg, tmp, seed, len(rows)), beta=beta, max_length=max_length, **losses)
    # the frozen reference is the start model itself: TRL would rebuild it from the model's
    # `_name_or_path` (trl/trainer/dpo_trainer.py), which names the base of a merged adapter
    # start and nothing at all for a model built from a config
    reference = {} if lora is not None or hasattr(model, "peft_config") else {"ref_model": reference_of(start)}
    result, history = run_trainer(DPOTrainer, args, model, tokenizer, rows, tmp, out, lora,
                                  prepare=_without_eos(tokenizer.eos_token_id) if open_ended else None, base=base_of(start),
                                  dtype=save_dtype(start), **reference)
    last = history[-1] if history else {}
    return {
        "steps": int(result.global_step),
        "pairs": len(rows),
        **({"consistency": consistency, "label_smoothing": losses["label_smoothing"]} if consistency is not None else {}),
        "train_loss": round(float(result.training_loss), 5),
        "final_loss": round(float(last["loss"]), 5) if "loss" in last else None,
        "reward_margin": round(float(last["rewards/margins"]), 5) if "rewards/margins" in last else None,
        **{key.replace("/", "_"): round(float(last[key]), 5) for key in ("rewards/chosen", "rewards/rejected", "logps/chosen",
                                                                         "logps/rejected") if key in last},
    }


def reference_of(start: str | Path):
    """DPO's frozen reference for a full fine-tune: the start model, as the policy starts
    (float32 weights), in evaluation mode."""
    import torch

    from selftrain.models import load_model

    return load_model(start, dtype=torch.float32).eval()


def cream_losses(consistency: float, loss_type: str = "sigmoid") -> dict[str, Any]:
    """TRL loss settings for CREAM's C * DPO(chosen, rejected) + (1 - C) * DPO(rejected, chosen)
    (C kept in [0.505, 1]: at 0.5 the two terms cancel and nothing is preferred).

    >>> cream_losses(0.8)
    {'loss_type': ['sigmoid', 'robust'], 'loss_weights': [1.6, -0.6], 'label_smoothing': 0.2}
    """
    if loss_type != "sigmoid":
        raise ValueError(f"consistency soft labels soften DPO's sigmoid loss, not {loss_type}")
    c = min(max(consistency, 0.505), 1.0)
    return {"loss_type": ["sigmoid", "robust"], "loss_weights": [round(2 * c, 6), round(1 - 2 * c, 6)],
            "label_smoothing": round(1 - c, 6)}


def _without_eos(eos: int):
    """Drops the end-of-sequence token TRL appended to each tokenized chosen and rejected."""

    def strip(example: dict[str, Any]) -> dict[str, Any]:
        return {key: example[key][:-1] if example[key] and example[key][-1] == eos else example[key]
                for key in ("chosen_ids", "rejected_ids")}

    return lambda trainer: setattr(trainer, "train_dataset", trainer.train_dataset.map(strip))
