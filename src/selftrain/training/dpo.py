"""Direct preference optimisation with TRL's DPOTrainer (Rafailov et al. 2023).

Rows are preference pairs: `{"prompt", "chosen", "rejected"}`. The reference model is the
start model, frozen (TRL makes the copy). The result is a plain Hugging Face folder, moved
into place only when training has finished, as for SFT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selftrain.config import TrainConfig
from selftrain.models import load_model, load_tokenizer
from selftrain.training.sft import keep_start, lora_config, run_trainer, staging_dir, trainer_args


def train_dpo(
    start: str | Path,
    rows: list[dict[str, str]],
    cfg: TrainConfig,
    out: Path,
    seed: int,
    beta: float = 0.1,
    max_length: int | None = None,
    nll_weight: float = 0.0,
) -> dict[str, Any]:
    """DPO from the model at `start` on preference `rows`; save the policy to `out`.

    `nll_weight` > 0 adds the negative log-likelihood of the chosen response, so weighted
    (TRL's `sft` loss beside `sigmoid`: the DPO + NLL loss of Iterative RPO, Pang et al.
    2024); 0 is plain DPO. With no pairs there is nothing to learn from: the start model is
    copied unchanged.
    """
    import datasets
    from trl import DPOConfig, DPOTrainer

    tmp = staging_dir(out)
    tokenizer = load_tokenizer(start)
    model = load_model(start)
    if not rows:
        keep_start(model, tokenizer, tmp, out)
        return {"steps": 0, "pairs": 0, "note": "no preference pairs: start model copied"}
    missing = {"prompt", "chosen", "rejected"} - set(rows[0])
    if missing:
        raise ValueError(f"DPO rows need prompt, chosen and rejected; missing {sorted(missing)}")

    datasets.disable_progress_bars()
    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, nll_weight]} if nll_weight > 0 else {}
    args = DPOConfig(**trainer_args(cfg, tmp, seed), beta=beta, max_length=max_length, **losses)
    result, history = run_trainer(DPOTrainer, args, model, tokenizer, rows, tmp, out, lora_config(cfg))
    last = history[-1] if history else {}
    return {
        "steps": int(result.global_step),
        "pairs": len(rows),
        "train_loss": round(float(result.training_loss), 5),
        "final_loss": round(float(last["loss"]), 5) if "loss" in last else None,
        "reward_margin": round(float(last["rewards/margins"]), 5) if "rewards/margins" in last else None,
    }
