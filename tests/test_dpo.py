"""DPO with TRL on a tiny local model: after training, the policy prefers the chosen
responses more than the start model did (log-probability margin grows)."""

import json
import math

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


def test_dpo_with_lora_on_chat_rows_gives_an_adapter_that_loads_merged(tmp_path):
    """Conversational rows (TRL applies the chat template) and a LoRA adapter, merged on save.

    LoRA adapts the inner layers only: on a random model, whose logits are all near zero,
    it can hardly move the output, so the start model is first SFT-trained a little (as a
    real start model would be)."""
    from selftrain.config import TinyModelConfig
    from selftrain.training.sft import train_sft
    from selftrain.training.tiny import save_tiny

    init = tmp_path / "init"
    save_tiny(init, TinyModelConfig(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                    max_length=128), seed=0, chat=True)
    tok = load_tokenizer(init)
    sft = [{"prompt": tok.apply_chat_template([{"role": "user", "content": f"{a}+{b}="}], tokenize=False,
                                              add_generation_prompt=True), "completion": f"A:{a + b}"}
           for a in range(6) for b in range(4)]
    start = tmp_path / "chat"
    train_sft(init, sft, TrainConfig(steps=60, batch_size=8, learning_rate=1e-2, warmup_steps=0, logging_steps=20), start, 0)
    rows = [{"prompt": [{"role": "user", "content": f"{a}+{b}="}],
             "chosen": [{"role": "assistant", "content": f"A:{a + b}"}],
             "rejected": [{"role": "assistant", "content": f"A:{a + b + 1}"}]} for a in range(6) for b in range(4)]
    cfg = TrainConfig(steps=40, batch_size=8, learning_rate=1e-2, warmup_steps=0, logging_steps=10, lora_r=8)
    info = train_dpo(start, rows, cfg, tmp_path / "model", seed=0, beta=0.1)
    assert info["steps"] == 40
    out = tmp_path / "model"
    # the adapter alone, relative to the start model (an engine holding the start serves it)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(start.resolve())
    flat = [{"prompt": tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True),
             "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]} for r in rows]
    before, after = _margin(start, flat), _margin(out, flat)
    # loaded (merged on load), the model carries what the adapter learned (LoRA on a 32-wide model learns slowly:
    # about 0.1 nats here, against 1.5 for full fine-tuning at the same budget)
    assert after > before + 0.05, (before, after)


def test_nll_only_loss_raises_the_chosen_likelihood_and_step_pairs_train_no_end(tiny_model_dir, tmp_path):
    """`loss_type: sft` (the RFT control of experiments/dpo_arms.py) raises log p(chosen);
    `max_epochs` caps the steps; open-ended rows (step-level pairs) are trained without the
    end-of-sequence token TRL appends."""
    import datasets

    from selftrain.training.dpo import _without_eos

    rows = [{"prompt": f"{a}+{b}=", "chosen": f"A:{a + b}", "rejected": f"A:{a + b + 1}"} for a in range(6) for b in range(4)]
    cfg = TrainConfig(steps=40, max_epochs=10, batch_size=8, learning_rate=2e-2, warmup_steps=0, logging_steps=10)
    info = train_dpo(tiny_model_dir, rows, cfg, tmp_path / "model", seed=0, loss_type="sft")
    assert info["steps"] == 30  # 10 epochs of 24 pairs in batches of 8
    assert info["logps_chosen"] is not None and _margin(tmp_path / "model", rows) > _margin(tiny_model_dir, rows)

    eos = load_tokenizer(tiny_model_dir).eos_token_id

    class Trainer:
        train_dataset = datasets.Dataset.from_list([{"chosen_ids": [5, 6, eos], "rejected_ids": [5, 7, eos]},
                                                    {"chosen_ids": [5, 6], "rejected_ids": [7]}])

    trainer = Trainer()
    _without_eos(eos)(trainer)
    assert trainer.train_dataset["chosen_ids"] == [[5, 6], [5, 6]] and trainer.train_dataset["rejected_ids"] == [[5, 7], [7]]


def test_cream_soft_labels_are_dpo_at_full_consistency_and_hold_the_margin_back_below_it(tiny_model_dir, tmp_path):
    """CREAM's C * DPO(chosen, rejected) + (1 - C) * DPO(rejected, chosen), built from TRL's
    sigmoid and robust losses: at C = 1 it trains exactly as plain DPO; at C = 0.6 its optimum
    is a margin of log(0.6 / 0.4) / beta over the reference's (0.41 nats at beta 1), where
    plain DPO goes on widening it. (Adam's steps do not shrink with the gradient, so only the
    optimum tells the two apart, not the first steps.)"""
    rows = [{"prompt": f"{a}+{b}=", "chosen": f"A:{a + b}", "rejected": f"A:{a + b + 1}"} for a in range(6) for b in range(4)]
    cfg = TrainConfig(steps=40, batch_size=8, learning_rate=2e-2, warmup_steps=0, logging_steps=10)
    plain = train_dpo(tiny_model_dir, rows, cfg, tmp_path / "plain", seed=0, beta=1.0)
    full = train_dpo(tiny_model_dir, rows, cfg, tmp_path / "c1", seed=0, beta=1.0, consistency=1.0)
    soft = train_dpo(tiny_model_dir, rows, cfg, tmp_path / "c06", seed=0, beta=1.0, consistency=0.6)
    assert full["label_smoothing"] == 0.0 and soft["label_smoothing"] == 0.4
    a, b = load_model(tmp_path / "plain").state_dict(), load_model(tmp_path / "c1").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert plain["train_loss"] == pytest.approx(full["train_loss"], abs=1e-5)
    before = _margin(tiny_model_dir, rows)
    hard, softened = _margin(tmp_path / "c1", rows) - before, _margin(tmp_path / "c06", rows) - before
    assert softened == pytest.approx(math.log(0.6 / 0.4), abs=0.1) and hard > 3 * softened, (hard, softened)
