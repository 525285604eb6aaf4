"""The M-step: TRL SFT on prompt-completion rows learns, and writes a loadable folder."""

import json

import torch
from transformers import AutoModelForCausalLM

from selftrain.config import TrainConfig
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.hf import HFSampler
from selftrain.training.sft import train_sft


def test_sft_learns_the_rows_and_writes_an_hf_folder(tiny_model_dir, tmp_path):
    rows = [{"prompt": f"{a}+{a}=", "completion": f"A:{2 * a}"} for a in range(10)]
    cfg = TrainConfig(steps=150, batch_size=10, learning_rate=1e-2, warmup_steps=0, logging_steps=10)
    info = train_sft(tiny_model_dir, rows, cfg, tmp_path / "model", seed=0, max_length=32)
    assert info["steps"] == 150 and info["examples"] == 10
    log = [h["loss"] for h in json.loads((tmp_path / "model" / "train_log.json").read_text()) if "loss" in h]
    assert log[-1] < log[0] / 3  # it learned
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (tmp_path / "model.tmp").exists()
    out = HFSampler(tmp_path / "model").generate([r["prompt"] for r in rows], SamplingParams(temperature=0.0, max_new_tokens=8), 0)
    assert sum(o == r["completion"] for o, r in zip(out, rows)) >= 8  # completions only, EOS learned


def test_no_rows_copies_the_start_model(tiny_model_dir, tmp_path):
    info = train_sft(tiny_model_dir, [], TrainConfig(), tmp_path / "model", seed=0)
    assert info["steps"] == 0 and "no training data" in info["note"]
    assert (tmp_path / "model" / "config.json").exists()
