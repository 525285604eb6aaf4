"""DPO with TRL on a tiny local model: after training, the policy prefers the chosen
responses more than the start model did (log-probability margin grows)."""

import pytest
import torch

from selftrain.config import TrainConfig
from selftrain.models import load_model, load_tokenizer
from selftrain.training.dpo import train_dpo


def _margin(folder, rows) -> float:
    """Mean over pairs of log p(chosen | prompt) - log p(rejected | prompt)."""
    model, tok = load_model(folder).eval(), load_tokenizer(folder)

    def logp(prompt, completion):
        p = tok(prompt)["input_ids"]
        ids = tok(prompt + completion)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        targets = torch.tensor(ids[1:])
        return logits[torch.arange(len(targets)), targets][len(p) - 1 :].sum().item()

    return sum(logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"]) for r in rows) / len(rows)


def test_dpo_raises_the_preference_margin(tiny_model_dir, tmp_path):
    rows = [{"prompt": f"{a}+{b}=", "chosen": f"A:{a + b}", "rejected": f"A:{a + b + 1}"} for a in range(6) for b in range(4)]
    cfg = TrainConfig(steps=40, batch_size=8, learning_rate=2e-2, warmup_steps=0, logging_steps=10)
    info = train_dpo(tiny_model_dir, rows, cfg, tmp_path / "model", seed=0, beta=0.1)
    assert info["steps"] == 40 and info["pairs"] == 24
    before, after = _margin(tiny_model_dir, rows), _margin(tmp_path / "model", rows)
    assert after > before + 1.0, (before, after)
    assert (tmp_path / "model" / "train_log.json").is_file()


def test_dpo_without_pairs_keeps_the_start_model(tiny_model_dir, tmp_path):
    info = train_dpo(tiny_model_dir, [], TrainConfig(steps=1), tmp_path / "model", seed=0)
    assert info["steps"] == 0 and (tmp_path / "model" / "config.json").is_file()
    with pytest.raises(ValueError, match="need prompt, chosen and rejected"):
        train_dpo(tiny_model_dir, [{"prompt": "x", "chosen": "y"}], TrainConfig(steps=1), tmp_path / "m2", seed=0)
