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


class _Exact:
    """A grader for these tests: right when the completion is the answer, exactly."""

    def __call__(self, problems, completions):
        from selftrain.records import Score

        return [Score(float(c == p.answer), "exact") for p, c in zip(problems, completions)]


def test_early_stopping_on_accuracy_keeps_the_best_weights(tiny_model_dir, tmp_path):
    from selftrain.config import EarlyStopping
    from selftrain.records import Problem
    from selftrain.training.sft import Validation

    rows = [{"prompt": f"{a}+{a}=", "completion": f"A:{2 * a}"} for a in range(10)]
    problems = [Problem(str(a), f"{a}+{a}=", f"A:{2 * a}") for a in range(10)]
    cfg = TrainConfig(steps=400, batch_size=10, learning_rate=1e-2, warmup_steps=0, logging_steps=10,
                      early_stopping=EarlyStopping(metric="accuracy", every=10, patience=2))
    info = train_sft(tiny_model_dir, rows, cfg, tmp_path / "model", seed=0, max_length=32,
                     validation=Validation(problems=problems, grader=_Exact(), max_new_tokens=8))
    steps = [s for s, _ in info["validation_accuracies"]]
    assert steps == list(range(10, info["steps"] + 1, 10)) and info["stopped_early"] and info["steps"] < 400
    best = max(acc for _, acc in info["validation_accuracies"])
    assert info["best_validation_accuracy"] == best > 0.5
    assert info["best_step"] == next(s for s, acc in info["validation_accuracies"] if acc == best)
    # the weights saved are the best measured: the saved model scores exactly that again
    out = HFSampler(tmp_path / "model").generate([p.prompt for p in problems], SamplingParams(temperature=0.0, max_new_tokens=8), 0)
    assert sum(o == p.answer for o, p in zip(out, problems)) / len(problems) == best


def test_early_stopping_on_the_loss_stops_when_held_out_rows_get_worse(tiny_model_dir, tmp_path):
    from selftrain.config import EarlyStopping
    from selftrain.training.sft import Validation

    rows = [{"prompt": f"{a}+{a}=", "completion": f"A:{2 * a}"} for a in range(10)]
    contradicting = [{"prompt": f"{a}+{a}=", "completion": f"A:{2 * a + 1}"} for a in range(10)]  # what training unlearns
    cfg = TrainConfig(steps=300, batch_size=10, learning_rate=1e-2, warmup_steps=0, logging_steps=10,
                      early_stopping=EarlyStopping(metric="loss", every=20, patience=2))
    info = train_sft(tiny_model_dir, rows, cfg, tmp_path / "model", seed=0, max_length=32,
                     validation=Validation(rows=contradicting))
    losses = info["validation_losses"]
    assert info["stopped_early"] and info["steps"] == losses[-1][0] < 300
    assert info["best_step"] == min(losses, key=lambda x: x[1])[0] and losses[-1][1] > losses[0][1]
    assert not any((tmp_path / "model").glob("checkpoint-*")) and (tmp_path / "model" / "config.json").is_file()
