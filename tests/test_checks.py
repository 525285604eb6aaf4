"""Check before spending, and a verifier of your own hardened: a task selftrain has never seen
(the digit sum of a 3-7 digit number, the dataset's own column names, a verifier written as
TRL's reward functions are), the checks of `selftrain check` and of the start of a run, and
the run that stops when its verifier judges nothing; a verifier that returns inf, raises,
hangs, or imports a file beside it; paths read from the config file's folder."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakes import scripted_backend

from selftrain.artifacts import RunDir, read_jsonl
from selftrain.errors import StageFailed
from selftrain.methods import load_config, parse_config
from selftrain.records import Problem
from selftrain.runs import CheckFailed, preflight, run_method

ROOT = Path(__file__).resolve().parents[1]


def _digit_sums(folder: Path, n: int = 40) -> Path:
    """The dataset a new user brought: columns uid, problem, target, work, digits."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        digits = rng.randint(3, 7)
        number = str(rng.randint(10 ** (digits - 1), 10**digits - 1))
        total = sum(map(int, number))
        rows.append({"uid": f"d{i}", "problem": f"digitsum {number} =", "target": total,
                     "work": f"{'+'.join(number)}={total} A:{total}" if i % 2 else None, "digits": digits})
    path = folder / "digit_sums.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CHECKS = '''
def digit_sum_right(prompts, completions, target=None, **columns):
    """TRL's reward signature, the dataset's own column name."""
    return [float(c.rsplit("A:", 1)[-1].strip() == str(t)) if "A:" in c else 0.0 for c, t in zip(completions, target)]


def wants_goal(prompts, completions, goal=None, **columns):
    return [float(c.rsplit("A:", 1)[-1].strip() == str(g)) for c, g in zip(completions, goal)]


def rejects_all(prompts, completions, **columns):
    return [0.0] * len(completions)


def cannot_read(prompts, completions, **columns):
    return [None] * len(completions)


def infinite(prompts, completions, target=None, **columns):
    return [1.0 if c.endswith(f"A:{t}") else float("inf") for c, t in zip(completions, target)]
'''


def _config(folder: Path, verifier: str, **more) -> dict:
    (folder / "checks.py").write_text(CHECKS)
    return {
        "name": "digit-sum",
        "task": {"name": "dataset", "dataset": {
            "path": str(_digit_sums(folder)), "verifier": f"{folder / 'checks.py'}:{verifier}", "timeout": 10,
            "columns": {"prompt": "problem", "answer": "target", "solution": "work", "id": "uid", "bucket": "digits"}}},
        "model": {"tiny": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_length": 48},
                  "sampler": {"backend": "scripted"}},
        "rest_em": {"iterations": 1, "compute_matched_baseline": False, "sft": {"steps": 1, "batch_size": 4},
                    "e_step": {"k": 2, "max_new_tokens": 16}, "m_step": {"steps": 1, "batch_size": 4}},
        "eval": {"k": 1, "max_new_tokens": 16}, **more}


def _sum_rule(prompt: str, seed: int, model: str) -> str:
    """FAKE model: the right digit sum, with its marker."""
    number = prompt.split()[1]
    return f" A:{sum(map(int, number))}"


def test_a_verifier_gets_the_datasets_columns_by_their_own_names_and_the_digit_sum_run_works(tmp_path):
    with scripted_backend(_sum_rule):
        cfg = parse_config(_config(tmp_path, "digit_sum_right"))
        found = {c.name: c for c in preflight(cfg, sample=False)}
        assert found["verifier"].status == "ok" and re.match(r"(\d+) of \1 human solutions accepted", found["verifier"].detail)
        assert "target" in found["verifier"].detail and "uid" in found["verifier"].detail  # the names it is called with
        metrics = run_method(cfg, tmp_path / "run")
    assert RunDir(tmp_path / "run").record("iter-01/score").info["correct"] > 0 and metrics["rows"][-1]["test"]["accuracy"] == 1.0


def test_a_verifier_that_cannot_read_the_data_stops_the_run_before_sft_with_the_names_it_was_called_with(tmp_path):
    with scripted_backend(_sum_rule):
        cfg = parse_config(_config(tmp_path, "wants_goal"))
        with pytest.raises(CheckFailed) as err:
            run_method(cfg, tmp_path / "run")
    text = str(err.value)
    assert "FAIL  verifier" in text and "raised TypeError" in text and "checks.py:" in text
    assert "called with prompts, completions and: answer, bucket, digits, id, problem, target, uid, work" in text
    assert RunDir(tmp_path / "run").record("sft/train") is None  # nothing trained


def test_the_failing_checks_a_prompt_too_long_an_empty_column_a_verifier_that_rejects_all_or_raises(tmp_path):
    with scripted_backend(_sum_rule):
        too_long = parse_config({**_config(tmp_path, "digit_sum_right"), "eval": {"k": 1, "max_new_tokens": 45}})
        found = {c.name: c for c in preflight(too_long, sample=False)}
        assert found["lengths"].status == "fail" and "eval (45)" in found["lengths"].detail
        rejecting = {c.name: c for c in preflight(parse_config(_config(tmp_path, "rejects_all")), sample=False)}
        assert rejecting["verifier"].status == "fail" and re.match(r"0 of \d+ human", rejecting["verifier"].detail)
    cfg = _config(tmp_path, "digit_sum_right")  # writes the data: then five answers emptied
    rows = [json.loads(line) for line in (tmp_path / "digit_sums.jsonl").read_text().splitlines()]
    for r in rows[:5]:
        r["target"] = ""
    (tmp_path / "digit_sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with scripted_backend(_sum_rule):
        data = {c.name: c for c in preflight(parse_config(cfg), sample=False)}
    assert data["data"].status == "warn" and "empty reference answer" in data["data"].detail


def test_a_run_whose_verifier_judges_nothing_stops_with_the_reasons_counted(tmp_path):
    with scripted_backend(_sum_rule):
        cfg = parse_config(_config(tmp_path, "cannot_read"))
        with pytest.raises(StageFailed, match=r"judged none of the \d+ samples.*Most common: \d+ x the function could not judge"):
            run_method(cfg, tmp_path / "run", check=False)  # the check would have stopped it already
        assert RunDir(tmp_path / "run").record("iter-01/train") is None
        going_on = parse_config({**_config(tmp_path, "cannot_read"), "allow_empty_stages": True})
        run_method(going_on, tmp_path / "run2", check=False)
    assert RunDir(tmp_path / "run2").record("iter-01/train").info["steps"] == 0


def test_an_infinite_reward_is_never_a_pass_and_keeps_no_wrong_row(tmp_path):
    def half_wrong(prompt: str, seed: int, model: str) -> str:  # FAKE model: wrong on every other seed
        number = prompt.split()[1]
        return f" A:{sum(map(int, number)) + (seed % 2)}"

    with scripted_backend(half_wrong):
        run_method(parse_config(_config(tmp_path, "infinite")), tmp_path / "run")
    kept = read_jsonl(tmp_path / "run" / "iter-01" / "selected.jsonl")
    assert kept and all(r["completion"].endswith(f"A:{sum(map(int, r['prompt'].split()[1]))}") for r in kept)
    reasons = {r["reason"] for r in read_jsonl(tmp_path / "run" / "iter-01" / "scores.jsonl") if r["value"] is None}
    assert reasons == {"the function returned inf, not a finite number, True/False or None"}


def test_evaluation_counts_unjudged_apart_and_says_so(tmp_path, capsys):
    (tmp_path / "flaky.py").write_text('''
def right_or_raise(prompts, completions, target=None, **columns):
    out = []
    for p, c, t in zip(prompts, completions, target):
        if p.split()[1].endswith("7"):
            raise ValueError("cannot read " + p)
        out.append(float(c.strip() == f"A:{t}"))
    return out
''')
    cfg = _config(tmp_path, "digit_sum_right")
    cfg["task"]["dataset"]["verifier"] = f"{tmp_path / 'flaky.py'}:right_or_raise"
    with scripted_backend(_sum_rule):
        metrics = run_method(parse_config(cfg), tmp_path / "run", check=False)
    test = metrics["rows"][0]["test"]
    sevens = sum(1 for r in read_jsonl(tmp_path / "run" / "sft" / "eval_greedy.jsonl") if r["prompt"].split()[1].endswith("7"))
    assert sevens and test["unjudged"] == sevens and test["accuracy"] == 1.0  # over the judged ones; the rest apart
    assert test["accuracy_counting_unjudged_wrong"] < 1.0 and "raised ValueError: cannot read" in next(iter(test["unjudged_reasons"]))
    assert "could not judge" in capsys.readouterr().out
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["stage"] == "sft/evaluate" and r.get("unjudged") == sevens for r in lines)


def test_a_verifier_imports_a_file_beside_it(tmp_path):
    from selftrain.verifiers.function import FunctionVerifier

    # a name no other test's file uses: Python imports a module once per process
    (tmp_path / "checks_helpers.py").write_text("def same(a, b):\n    return str(a).strip() == str(b).strip()\n")
    (tmp_path / "checks.py").write_text("from checks_helpers import same\n\n\ndef right(prompts, completions, answer, **c):\n"
                                        "    return [same(x, y) for x, y in zip(completions, answer)]\n")
    verifier = FunctionVerifier(f"{tmp_path / 'checks.py'}:right", timeout=30)
    try:
        assert [s.value for s in verifier([Problem("a", "q", "4")] * 2, ["4", "5"])] == [1.0, 0.0]
    finally:
        verifier.close()


def test_a_config_run_from_another_folder_reads_its_paths_from_its_own(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    cfg = _config(folder, "digit_sum_right")
    cfg["task"]["dataset"].update(path="digit_sums.jsonl", verifier="checks.py:digit_sum_right")  # relative to the config
    (folder / "run.yaml").write_text(yaml.safe_dump(cfg))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with scripted_backend(_sum_rule):
        loaded = load_config(folder / "run.yaml")
        assert loaded.task.settings["path"] == str(folder / "digit_sums.jsonl")
        assert {c.name: c.status for c in preflight(loaded, sample=False)}["verifier"] == "ok"
    missing = {**cfg, "task": {"name": "gsm8k", "gsm8k": {"train_path": "train.jsonl", "test_path": "nowhere/test.jsonl"}}}
    (folder / "missing.yaml").write_text(yaml.safe_dump({k: v for k, v in missing.items() if k not in ("rest_em", "model")}))
    from selftrain.errors import TaskDataError
    from selftrain.tasks import build_task

    (folder / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    task = build_task(load_config(folder / "missing.yaml").task)
    with pytest.raises(TaskDataError, match=r"task.gsm8k.test_path \(test split\): no data file at .*project/nowhere/test.jsonl"):
        task.test()


@pytest.mark.slow  # five CLI processes
def test_selftrain_check_on_the_shipped_configs_that_run_offline():
    for name in ("arithmetic-rest-em", "arithmetic-own-problems", "arithmetic-curriculum", "arithmetic-self-rewarding",
                 "arithmetic-distill"):
        proc = subprocess.run([sys.executable, "-m", "selftrain.cli", "check", str(ROOT / "configs" / f"{name}.yaml")],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
        assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
        assert "ok    verifier" in proc.stdout and "ok    sampler" in proc.stdout, proc.stdout
