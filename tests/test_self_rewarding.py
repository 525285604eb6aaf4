"""Self-Rewarding end to end on a tiny model: every stage runs and writes its files, the
report has both curves, a rerun skips everything, and a run killed mid-DPO resumes."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftrain.artifacts import read_jsonl
from selftrain.methods import parse_config
from selftrain.methods.self_rewarding import demo_config, eft_rows, prompt_writing_rows
from selftrain.runs import run_method
from selftrain.stages import judge_accuracy
from selftrain.tasks.arithmetic import ArithmeticTask, aligned_solution, judge_score

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def _tiny_cfg() -> dict:
    d = yaml.safe_load(demo_config(0).to_yaml())
    d["task"]["arithmetic"].update(human_size=80, pool_size=60, test_per_bucket=6, test_digits=[1, 2, 3])
    # just enough training that M1 writes a few well-formed prompts, so every stage has work
    d["model"]["tiny"].update(hidden_size=48, num_layers=2, num_heads=2, intermediate_size=96)
    sec = d["self_rewarding"]
    sec["sft"].update(steps=80, batch_size=16)
    sec["dpo"].update(steps=4, batch_size=4, logging_steps=2)
    sec["prompts"]["n"] = 10
    sec["judge"].update(eval_pairs=10, samples=2)
    # M0 long enough that some responses get a column right: the grader then orders them into pairs
    sec.update(iterations=2, eft_size=20, pretrain_steps=500, writing_size=40)
    d["eval"].update(k=1)
    return d


def test_eft_and_prompt_writing_data_have_the_papers_form():
    task = ArithmeticTask()
    rows = eft_rows(task.human(), task.width, 20, seed=0)
    assert all(r["prompt"].startswith("J:") and " Score: " in r["completion"] for r in rows)
    right = sum(r["completion"].endswith("Score: 5") for r in rows)
    assert 0 < right < 20  # right solutions and solutions with one mistake
    for r, p in zip(rows, task.human()):  # the judge's working is the right solution, then the grader's verdict
        assert r["prompt"].endswith(f" P:{p.prompt}")
        response = r["prompt"][len("J:"):-len(f" P:{p.prompt}")]
        a, b = p.meta["a"], p.meta["b"]
        assert r["completion"] == aligned_solution(a, b, task.width) + " " + judge_score(a, b, response, task.width)[1]
    terse = eft_rows(task.human(), task.width, 4, seed=0, working=False)
    assert all(r["completion"].startswith((" all", " step", " answer", " steps")) for r in terse)
    writing = prompt_writing_rows([p.prompt for p in task.pool()], 8, 3, seed=0)
    assert all(r["prompt"].count("\n") == 8 and r["completion"].endswith("=") for r in writing)


def test_judge_accuracy_counts_ties_and_unreadable_apart():
    class Judge:
        def __call__(self, problems, responses):
            from selftrain.records import Score

            table = {"good": Score(5.0, ""), "bad": Score(1.0, ""), "meh": Score(5.0, ""), "??": Score(None, "")}
            return [table[r] for r in responses]

    pairs = [{"id": str(i), "prompt": "1+1=", "better": b, "worse": w}
             for i, (b, w) in enumerate([("good", "bad"), ("bad", "good"), ("good", "meh"), ("??", "bad")])]
    assert judge_accuracy(Judge(), pairs) == {"judge_accuracy": 0.25, "judge_ties": 0.25, "judge_unreadable": 0.25}


def test_shipped_config_is_the_demo():
    from pathlib import Path

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "arithmetic-self-rewarding.yaml").read_text())
    assert parse_config(shipped) == demo_config(0)


@pytest.mark.slow
def test_runs_resumes_and_reports_both_curves(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_tiny_cfg()))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "selftrain.cli", "run", str(cfg), "--out", str(out)]
    killed = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, "SELFTRAIN_KILL_AT": "iter-01/samples.jsonl:shard0"}, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"skip\s+m1/evaluate", done.stdout) and re.search(r"done\s+iter-01/responses", done.stdout), done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["label"] for r in metrics["rows"]] == ["M1", "M2", "M3"]
    assert all(0.0 <= r["judge_accuracy"] <= 1.0 and "accuracy" in r["test"] for r in metrics["rows"])
    for name in ("prompts.jsonl", "samples.jsonl", "judgements.jsonl", "scores.jsonl", "pairs.jsonl"):
        assert (out / "iter-01" / name).is_file()
    judged = [json.loads(line) for line in (out / "iter-01" / "judgements.jsonl").open()]
    assert judged and all(len(j["outputs"]) == 2 for j in judged)
    page = (out / "report.html").read_text()
    assert "judge pairwise accuracy" in page and "<svg" in page
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0 and not re.search(r"done\s+\S+/", again.stdout), again.stdout

    # the diagnostic: the grader in the judge's place; M1 is reused, every pair is truly ordered
    d = _tiny_cfg()
    d["self_rewarding"]["judge"]["pair_judge"] = "grader"
    cfg.write_text(yaml.safe_dump(d))
    oracle = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert oracle.returncode == 0, oracle.stderr[-2000:]
    assert re.search(r"skip\s+m1/train", oracle.stdout) and re.search(r"done\s+iter-01/score", oracle.stdout), oracle.stdout
    scores = [json.loads(line) for line in (out / "iter-01" / "scores.jsonl").open()]
    assert scores and all(sc["reason"].startswith("grader: ") for sc in scores)
    rows = {r["group"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    pairs = rows["iter-01"]["pairs"]
    assert pairs["pairs"] > 0 and pairs["chosen_truly_better"] == 1.0


SEEDS = Path(__file__).resolve().parent / "fixtures" / "self_instruct_seed_tasks.jsonl"


def test_chat_model_path_runs_every_stage(tmp_path):
    """The general method on a chat model: a tiny Llama with a chat template (random weights,
    so its prompts, answers and judgements are noise; the point is that every stage runs,
    through the chat template and the paper's 1,500-character judge prompt, and resumes)."""
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    model = tmp_path / "chat-model"
    save_tiny(model, TinyModelConfig(arch="llama", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                     max_length=4096), seed=0, chat=True)
    cfg = parse_config({
        "name": "sr-chat", "method": "self-rewarding", "model": {"name_or_path": str(model), "sampler": {"batch_size": 16}},
        "self_rewarding": {"variant": "chat", "iterations": 1, "prompts": {"n": 3}, "responses": {"k": 2, "max_new_tokens": 8},
                           "judge": {"samples": 1, "max_new_tokens": 8, "finish": True},
                           "dpo": {"steps": 2, "batch_size": 2, "logging_steps": 1, "lora_r": 4},
                           "eval_prompts": 2, "seed_prompts": str(SEEDS)},
    })
    out = tmp_path / "run"
    metrics = run_method(cfg, out)
    assert [r["label"] for r in metrics["rows"]] == ["M1", "M2"]
    m2 = metrics["rows"][1]
    assert m2["prompts"]["kept"] == 3 and m2["judge"]["judged"] == 6 and "vs_m1" in m2
    # a random model never writes "Score:" by itself: every judgement was finished through the chat template
    assert m2["judge"]["finished"] == 6 and m2["judge"]["unreadable"] == 0
    assert all("\nScore: " in o for r in read_jsonl(out / "iter-01" / "judgements.jsonl") for o in r["outputs"])
    assert sum(m2["vs_m1"].values()) == 2
    assert (out / "iter-01" / "model" / "config.json").is_file()
    assert "M1-judged score" in (out / "report.html").read_text()
    marks = {str(p): p.stat().st_mtime_ns for p in out.rglob("*.done.json")}
    assert run_method(cfg, out)["rows"] == metrics["rows"]
    assert {str(p): p.stat().st_mtime_ns for p in out.rglob("*.done.json")} == marks
