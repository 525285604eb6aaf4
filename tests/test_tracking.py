"""Tracking: RUN/metrics.jsonl always; TensorBoard's event files and trackio's store, read back
with their own readers; one step axis across every training stage; a rerun logs nothing
twice; a tracker that is not installed names its extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fakes import scripted_backend

from selftrain.errors import ConfigError
from selftrain.methods import parse_config
from selftrain.runs import run_method

TRAIN = {"steps": 3, "batch_size": 8, "logging_steps": 1, "warmup_steps": 0}


def _cfg(**tracking) -> dict:
    return {"name": "tracked", "method": "rest-em",
            "task": {"arithmetic": {"human_size": 30, "pool_size": 16, "test_per_bucket": 3, "test_digits": [1, 2]}},
            "model": {"tiny": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 48},
                      "sampler": {"backend": "scripted"}},
            "rest_em": {"iterations": 2, "sft": TRAIN, "m_step": TRAIN, "e_step": {"k": 2, "max_new_tokens": 30}},
            "eval": {"k": 1, "max_new_tokens": 30}, "tracking": tracking}


def test_tensorboard_and_metrics_jsonl_share_one_step_axis(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with scripted_backend():
        run_method(parse_config(_cfg(report_to="tensorboard")), tmp_path / "run")
    points = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evals = [p for p in points if p["stage"].endswith("/evaluate")]
    # sft (3 steps), compute-matched (6 more), iteration 1 (3 more), iteration 2 (3 more)
    assert [(p["stage"], p["step"]) for p in evals] == [("sft/evaluate", 3), ("compute-matched/evaluate", 9),
                                                          ("iter-01/evaluate", 12), ("iter-02/evaluate", 15)]
    losses = [p for p in points if "loss" in p and p["stage"].endswith("/train")]
    assert [p["step"] for p in losses if p["stage"] == "iter-02/train"] == [13, 14, 15]
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "iter/evaluate/accuracy" in tags and "iter/train/loss" in tags and "iter/score/correct" in tags
    accuracy = events.Scalars("iter/evaluate/accuracy")
    assert [e.step for e in accuracy] == [12, 15]
    assert [round(e.value, 5) for e in accuracy] == [p["accuracy"] for p in evals[2:]]
    assert [e.step for e in events.Scalars("iter/train/loss")] == [10, 11, 12, 13, 14, 15]

    with scripted_backend():  # a rerun skips every stage and logs nothing twice
        run_method(parse_config(_cfg(report_to="tensorboard")), tmp_path / "run")
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == len(points)


def test_trackio_stores_the_run_where_its_reader_finds_it(tmp_path):
    pytest.importorskip("trackio", reason="the trackio extra (README's test set-up installs it)")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "OMP_NUM_THREADS": "2"}
    script = (f"import sys; sys.path.insert(0, {str(os.path.dirname(__file__))!r})\n"
              "from fakes import scripted_backend\nfrom selftrain.methods import parse_config\n"
              "from selftrain.runs import run_method\nimport json\n"
              f"cfg = json.loads({json.dumps(json.dumps(_cfg(report_to=['trackio'], project='spec', run_name='r0')))})\n"
              f"with scripted_backend():\n    run_method(parse_config(cfg), {str(tmp_path / 'run')!r})\n")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    read = ("from trackio import SQLiteStorage; import json\n"
            "print(json.dumps([r for r in SQLiteStorage.get_logs('spec', 'r0') if 'iter/evaluate/accuracy' in r]))")
    rows = json.loads(subprocess.run([sys.executable, "-c", read], env=env, check=True, capture_output=True,
                                     text=True, timeout=120).stdout.strip().splitlines()[-1])
    points = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    want = [(p["step"], p["accuracy"]) for p in points if p["stage"].startswith("iter-") and p["stage"].endswith("/evaluate")]
    assert [(r["step"], r["iter/evaluate/accuracy"]) for r in rows] == want and len(want) == 2


def test_a_tracker_that_is_not_installed_names_its_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with scripted_backend(), pytest.raises(ConfigError, match=r"tracking.report_to names wandb, which is not installed .*pip install 'selftrain\[wandb\]'"):
        run_method(parse_config(_cfg(report_to="wandb")), tmp_path / "run")
    assert not (tmp_path / "run" / "init").exists()  # before any stage
    with pytest.raises(ConfigError, match="report_to: unknown tracker 'tensorbord'"):
        parse_config(_cfg(report_to=["tensorbord"]))
