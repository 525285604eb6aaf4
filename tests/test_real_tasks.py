"""Tasks from real data: loaders, clear errors, splits, and each shipped real-model config
run for one short iteration with a tiny local model (killed mid-run, resumed, rerun)."""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftrain.artifacts import read_rows
from selftrain.errors import ConfigError, TaskDataError
from selftrain.methods import parse_config
from selftrain.tasks import build_task
from selftrain.tasks.dataset import DatasetTask
from selftrain.tasks.real import GSM8KConfig, GSM8KTask, HumanEvalConfig, HumanEvalTask, Math500Config, Math500Task

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is absent")


def test_read_rows_names_the_file_and_line(tmp_path):
    with pytest.raises(TaskDataError, match="no data file at"):
        read_rows(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": 1, "a": 2}\n\n{"q": 2, "a": \n')
    with pytest.raises(TaskDataError, match=r"bad.jsonl:3: not valid JSON"):
        read_rows(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"q": 1, "a": 2}\n{"q": 2}\n')
    with pytest.raises(TaskDataError, match=r"missing.jsonl:2: missing field 'a'"):
        read_rows(missing, ("q", "a"))
    listed = tmp_path / "list.jsonl"
    listed.write_text("[1, 2]\n")
    with pytest.raises(TaskDataError, match=r"list.jsonl:1: expected a JSON object"):
        read_rows(listed)
    packed = tmp_path / "ok.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write('{"q": 1}\n')
    assert read_rows(packed) == [{"q": 1}]


@needs_data
def test_gsm8k_splits_and_solutions():
    task = GSM8KTask(GSM8KConfig(train_path=str(DATA / "gsm8k/train.jsonl"), test_path=str(DATA / "gsm8k/test.jsonl")))
    human, pool, test = task.human(), task.pool(), task.test()
    assert (len(human), len(pool), len(test)) == (7473, 7473, 1319)
    assert all(p.solution is None for p in pool)
    first = human[0]
    assert first.prompt.startswith("Question: ") and first.prompt.endswith("\nAnswer:")
    assert first.solution.rstrip().endswith(f"#### {first.answer}") and "<<" not in first.solution
    assert {p.bucket for p in test} <= {f"{n} steps" for n in range(1, 6)} | {"6+ steps"}


@needs_data
def test_math500_and_humaneval_split_into_disjoint_halves():
    m = Math500Task(Math500Config(path=str(DATA / "math500/test.jsonl")))
    assert len(m.pool()) + len(m.test()) == 500
    assert not {p.id for p in m.pool()} & {p.id for p in m.test()}
    assert {p.bucket for p in m.test()} == {f"level {n}" for n in range(1, 6)}
    h = HumanEvalTask(HumanEvalConfig(test_size=10))
    assert len(h.pool()) == 82 and len(h.test()) == 10
    assert not {p.id for p in h.pool()} & {p.id for p in HumanEvalTask(HumanEvalConfig()).test()}


def test_jsonl_task_is_the_dataset_task_with_a_column_mapping(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"uid": f"q{i}", "text": f"What is {i}+{i}?", "gold": str(2 * i), "level": "easy"} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = parse_config({"task": {"name": "jsonl", "jsonl": {
        "path": str(path), "columns": {"prompt": "text", "answer": "gold", "id": "uid", "bucket": "level"},
        "verifier": "exact", "marker": "=", "prompt_template": "Q: {prompt}\nA:"}}})
    task = build_task(cfg.task)
    assert isinstance(task, DatasetTask)
    assert len(task.pool()) == 5 and len(task.test()) == 5 and task.human() == []
    p = task.test()[0]
    assert p.id.startswith("q") and p.bucket == "easy" and p.prompt.startswith("Q: What is")
    scores = task.verifier()([p, p], [f"so = {p.answer}", "= 0"])
    assert [s.accepted for s in scores] == [True, p.answer == "0"]


def test_jsonl_config_errors_say_what_is_missing_and_where_fields_moved():
    with pytest.raises(ConfigError, match="verifier .code. needs the tests field"):
        parse_config({"task": {"name": "jsonl", "jsonl": {"path": "x.jsonl", "verifier": "code"}}})
    with pytest.raises(ConfigError, match="path: the dataset's hub name"):
        parse_config({"task": {"name": "jsonl"}})
    with pytest.raises(ConfigError, match=r"task.jsonl.fields.prompt -> task.jsonl.columns.prompt"):
        parse_config({"task": {"name": "jsonl", "jsonl": {"path": "x.jsonl", "fields": {"prompt": "q"}}}})


def _tiny(name: str) -> dict:
    """The shipped config, with the tiny local model and a handful of problems."""
    cfg = yaml.safe_load((ROOT / "configs" / f"{name}-rest-em.yaml").read_text())
    cfg["model"]["name_or_path"] = None
    cfg["model"]["tiny"].update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_length=1024)
    section = cfg["task"][name]
    section.update(human_size=4, pool_size=3, test_size=3)
    local = {"gsm8k": {"train_path": DATA / "gsm8k/train.jsonl", "test_path": DATA / "gsm8k/test.jsonl"},
             "math500": {"path": DATA / "math500/test.jsonl"}}  # the shipped configs read the hub: offline, local copies
    section.update({k: str(v) for k, v in local.get(name, {}).items()})
    cfg["model"]["sampler"] = {"backend": "hf", "batch_size": 8}
    cfg["rest_em"]["e_step"].update(k=2, max_new_tokens=16, shard_size=2)
    for s in ("sft", "m_step"):
        cfg["rest_em"][s].update(steps=2, batch_size=2, gradient_checkpointing=False, learning_rate=1e-3)
    cfg["rest_em"].update(iterations=1, compute_matched_baseline=False)
    cfg["eval"].update(k=2, max_new_tokens=16)
    return cfg


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("name", ["gsm8k", "math500", "humaneval"])
def test_shipped_config_runs_resumes_and_skips(tmp_path, name):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_tiny(name)))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "selftrain.cli", "run", str(cfg_path), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**env, "SELFTRAIN_KILL_AT": "iter-01/samples.jsonl:shard1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert re.search(r"skip\s+sft/train", resumed.stdout), resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["group"] for r in metrics["rows"]] == ["sft", "iter-01"]
    scores = [json.loads(line) for line in (out / "iter-01" / "scores.jsonl").open()]
    assert len(scores) == 6 and all(s["reason"] for s in scores)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and len(re.findall(r"skip\s+\S+/", again.stdout)) >= 7, again.stdout
