"""Training in several processes, for real: two processes (torchrun, DDP over gloo on this
CPU) train a tiny model to the losses and weights of one process with the same global batch
(TRL's invariance test: per-device batch x processes = batch), and a two-process M-step of a
ReST-EM run is killed and resumed to the metrics of an uninterrupted run."""

from __future__ import annotations

import json

import pytest

from selftrain.config import LaunchConfig, TinyModelConfig, TrainConfig
from selftrain.training.launch import launched
from selftrain.training.sft import train_sft
from selftrain.training.tiny import save_tiny

pytestmark = pytest.mark.slow

def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_two_processes_train_to_the_losses_and_weights_of_one(tmp_path):
    save_tiny(tmp_path / "init", TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                                 max_length=48), seed=0)
    rows = [{"prompt": f"{a}+{b}=", "completion": f"A:{a + b}"} for a in range(20) for b in range(5)]
    cfg = TrainConfig(steps=12, batch_size=8, learning_rate=3e-3, warmup_steps=2, logging_steps=1)
    train_sft(tmp_path / "init", rows, cfg, tmp_path / "one", seed=3, max_length=48)
    two = cfg.model_copy(update={"launch": LaunchConfig(processes=2)})
    info = launched("sft", tmp_path / "init", rows, two, tmp_path / "two", 3, tmp_path / "two.log", max_length=48)
    assert info["steps"] == 12 and info["examples"] == len(rows)
    losses = {name: [h["loss"] for h in json.loads((tmp_path / name / "train_log.json").read_text()) if "loss" in h]
              for name in ("one", "two")}
    assert len(losses["one"]) == len(losses["two"]) == 12
    loss_gap = max(abs(a - b) for a, b in zip(losses["one"], losses["two"]))
    one, other = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    weight_gap = max(float((one[k] - other[k]).abs().max()) for k in one)
    moved = max(float((one[k] - _weights(tmp_path / "init")[k]).abs().max()) for k in one)
    print(f"largest gap: loss {loss_gap:.2e}, weight {weight_gap:.2e} (training moved weights by up to {moved:.2e})")
    # the same batches, but float32 sums in another order (each half reduced in its process,
    # then the two averaged): measured here, loss 4.8e-07 and weights 1.8e-06 apart, a
    # ten-thousandth of how far training moved them; a wrong batch or learning rate would
    # move them apart by as much as training does
    assert loss_gap < 1e-5 and weight_gap < 1e-3 * moved


def test_a_two_process_m_step_killed_and_resumed_ends_as_an_uninterrupted_run(tmp_path, tiny_cfg_dict, monkeypatch):
    """In-process with the shared FAKE sampler (so the E-step keeps samples to train on), the
    M-step in two real processes: killed at its second step (every process dies there, the
    stage fails), then rerun."""
    from fakes import arithmetic, scripted_backend

    from selftrain.methods import parse_config
    from selftrain.runs import run_method
    from selftrain.training.launch import TrainingFailed

    tiny_cfg_dict["model"]["sampler"] = {"backend": "scripted"}
    tiny_cfg_dict["rest_em"].update(iterations=1, compute_matched_baseline=False)
    tiny_cfg_dict["rest_em"]["m_step"].update(steps=4, launch={"processes": 2})
    with scripted_backend(lambda prompt, seed, model: arithmetic(prompt, seed, "")):  # the same in both run folders
        cfg = parse_config(tiny_cfg_dict)
        whole = run_method(cfg, tmp_path / "whole")
        monkeypatch.setenv("SELFTRAIN_KILL_AT", "iter-01/train:step2")
        with pytest.raises(TrainingFailed, match="training iter-01 in 2 processes ended with exit"):
            run_method(cfg, tmp_path / "killed")
        assert (tmp_path / "killed" / "iter-01" / "model.tmp").exists()
        assert not (tmp_path / "killed" / "iter-01" / "model").exists()
        monkeypatch.delenv("SELFTRAIN_KILL_AT")
        resumed = run_method(cfg, tmp_path / "killed")
    rows = {n: [{k: v for k, v in r.items() if k != "seconds"} for r in m["rows"]] for n, m in (("whole", whole), ("killed", resumed))}
    assert rows["whole"] == rows["killed"] and rows["whole"][-1]["train"]["steps"] == 4
    assert rows["whole"][-1]["train"]["examples"] > 0
    assert (tmp_path / "killed" / "logs" / "iter-01-train.log").stat().st_size > 0  # both tries' processes logged there


def test_two_machines_on_localhost_train_to_the_losses_and_weights_of_one(tmp_path):
    """Two torchrun agents, one process each, a c10d rendezvous on 127.0.0.1: the run's own
    (`launched`, as a training stage starts it) and a `selftrain node` following the run
    folder, as another machine would."""
    import socket
    import subprocess
    import sys

    from selftrain.training.launch import command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two_nodes = LaunchConfig(processes=1, nodes=2, rdzv_endpoint=f"127.0.0.1:{port}")
    assert "--standalone" not in command(two_nodes, tmp_path / "job.json", "x")
    assert "--standalone" in command(LaunchConfig(processes=2), tmp_path / "job.json")
    # the arguments of a several-machine launch turn --standalone off too (it would override them)
    assert "--standalone" not in command(LaunchConfig(processes=2, launcher_args=["--nnodes=2", "--rdzv_endpoint", "h:1"]),
                                         tmp_path / "job.json")
    save_tiny(tmp_path / "init", TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                                 max_length=48), seed=0)
    rows = [{"prompt": f"{a}+{b}=", "completion": f"A:{a + b}"} for a in range(20) for b in range(5)]
    cfg = TrainConfig(steps=8, batch_size=8, learning_rate=3e-3, warmup_steps=2, logging_steps=1)
    train_sft(tmp_path / "init", rows, cfg, tmp_path / "run" / "one" / "model", seed=3, max_length=48)
    other = subprocess.Popen([sys.executable, "-m", "selftrain.cli", "node", str(tmp_path / "run"), "--jobs", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        info = launched("sft", tmp_path / "init", rows, cfg.model_copy(update={"launch": two_nodes}),
                        tmp_path / "run" / "two" / "model", 3, tmp_path / "two.log", max_length=48)
        out, _ = other.communicate(timeout=300)
    finally:
        other.kill()
    assert other.returncode == 0 and "joined 1 training stage" in out, out
    assert info["steps"] == 8
    losses = {name: [h["loss"] for h in json.loads((tmp_path / "run" / name / "model" / "train_log.json").read_text())
                     if "loss" in h] for name in ("one", "two")}
    assert max(abs(a - b) for a, b in zip(losses["one"], losses["two"])) < 1e-4
    one, two = _weights(tmp_path / "run" / "one" / "model"), _weights(tmp_path / "run" / "two" / "model")
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-4
