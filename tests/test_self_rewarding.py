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
from selftrain.data import SELF_INSTRUCT_SEED_TASKS
from selftrain.methods import complete, parse_config
from selftrain.methods.self_rewarding import demo_config
from selftrain.methods.self_rewarding.miniature import prompt_writing_rows
from selftrain.records import Sample
from selftrain.runs import run_method
from selftrain.stages.self_rewarding import judge_accuracy
from selftrain.tasks.arithmetic import ArithmeticConfig, ArithmeticTask, aligned_solution, apply, operation
from selftrain.tasks.arithmetic_judge import WellFormed, check_solution, eft_rows, judge_template, rubric

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def _tiny_cfg() -> dict:
    d = yaml.safe_load(demo_config(0).to_yaml())
    d["task"]["arithmetic"].update(human_size=80, pool_size=60, test_per_bucket=6, test_digits=[1, 2, 3])
    # just enough training that M1 writes a few well-formed prompts, so every stage has work
    d["model"]["tiny"].update(hidden_size=48, num_layers=2, num_heads=2, intermediate_size=96)
    sec, mini = d["self_rewarding"], d["self_rewarding"]["miniature"]
    mini["sft"].update(steps=80, batch_size=16)
    sec["dpo"].update(steps=4, batch_size=4, logging_steps=2, max_epochs=None)
    sec["prompts"]["n"] = 20
    sec["judge"].update(samples=2)
    # every untied pair (the shipped filter, chosen 5 and rejected <= 3, leaves a judge this tiny none)
    sec.update(iterations=2, pairs={"min_chosen_score": None, "max_rejected_score": None})
    mini.update(eval_pairs=10, eft_size=20, writing_size=40)
    # M0 long enough that some responses get a column right: the grader then orders them into pairs
    mini["pretrain"].update(steps=500)
    d["eval"].update(k=1)
    return d


def test_a_right_answer_checks_out_and_a_wrong_one_does_not():
    import random

    rng = random.Random(0)
    for _ in range(300):
        op, b = rng.choice("+-"), rng.randrange(5000)
        a = rng.randrange(b, 10000) if op == "-" else rng.randrange(10000 - b)
        right = apply(a, b, op)
        working, result = check_solution(f"{right:04d}", b, op, 4)
        # the check of a right answer is the inverse problem, solved as the solver writes it
        inverse = {"+": "-", "-": "+"}[op]
        assert result == a and working == aligned_solution(right, b, 4, inverse), (a, op, b)
        assert rubric(str(result), a, 4) == 5
        wrong = (right + rng.randrange(1, 10000)) % 10000
        assert rubric(str(check_solution(f"{wrong:04d}", b, op, 4)[1]), a, 4) <= 3


def test_eft_rows_are_the_models_own_answers_half_right_with_exact_checks():
    task = ArithmeticTask(ArithmeticConfig(operations=["+", "-"]))
    problems = task.pool()[:40]
    samples = [Sample(p.id, i, p.prompt, f"x A:{int(p.answer) + i}") for p in problems for i in range(3)]  # 1 right, 2 wrong
    rows = eft_rows(problems, samples, task.width, 30, seed=0)
    assert len(rows) == 30 and sum(r["completion"].endswith(tuple(f"A:{p.meta['a']}" for p in problems)) for r in rows) >= 15
    by_b = {(p.meta["b"], operation(p)): p for p in problems}
    for r in rows:  # the check the answer calls for, and its exact worked solution
        shown, op, b = re.fullmatch(r"(\d{4})([+-])(\d{4})=", r["prompt"]).groups()
        p = next(q for (qb, qop), q in by_b.items() if qb == int(b) and qop != op)
        assert r["completion"] == check_solution(shown, p.meta["b"], operation(p), 4)[0]
    assert judge_template(4).format("0001+0002=", "1+2+0=03 A:3") == "0003-0002="
    assert judge_template(4).format("0001+0002=", "no answer") == "?"
    writing = prompt_writing_rows([p.prompt for p in task.pool()], 8, 3, seed=0)
    assert all(r["prompt"].count("\n") == 8 and r["completion"].endswith("=") for r in writing)


def test_written_prompts_must_be_problems_the_task_could_hold():
    well_formed, only_sums = WellFormed(4, ("+", "-")), WellFormed(4, ("+",))
    assert well_formed("0347+0085=") and well_formed("0432-0085=")
    assert not well_formed("0085-0432=")  # negative difference
    assert not well_formed("9000+1000=")  # sum past the columns
    assert not well_formed("347+85=") and not only_sums("0432-0085=")
    assert not well_formed("12345+678=")  # the right length, operands out of their columns


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

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "arithmetic-self-rewarding.yaml").read_text())
    assert parse_config(shipped) == complete(demo_config(0))


@pytest.mark.slow
def test_runs_resumes_and_reports_both_curves(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_tiny_cfg()))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "selftrain.cli", "run", str(cfg), "--out", str(out)]
    killed = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, "SELFTRAIN_KILL_AT": "iter-01/responses.jsonl:shard0"}, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"skip\s+m1/evaluate", done.stdout) and re.search(r"done\s+iter-01/responses", done.stdout), done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["label"] for r in metrics["rows"]] == ["M1", "M2", "M3"]
    assert all(0.0 <= r["judge_accuracy"] <= 1.0 and "accuracy" in r["test"] for r in metrics["rows"])
    for name in ("prompts.jsonl", "responses.jsonl", "judgements.jsonl", "scores.jsonl", "pairs.jsonl"):
        assert (out / "iter-01" / name).is_file()
    judged = [json.loads(line) for line in (out / "iter-01" / "judgements.jsonl").open()]
    assert judged and all(len(j["outputs"]) == 2 for j in judged)
    page = (out / "report.html").read_text()
    assert "judge pairwise accuracy" in page and "<svg" in page
    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0 and not re.search(r"done\s+\S+/", again.stdout), again.stdout

    # the controls, from the same M1: the exact check makes the pairs (every rejected answer, the
    # lower-scored of two, wrong), and SFT on M1's data for as many steps as each iteration took
    controls = metrics["controls"]
    assert [r["label"] for r in controls["grader"]] == ["M1", "M2", "M3"] == [r["label"] for r in controls["sft"]]
    scores = [json.loads(line) for line in (out / "grader-iter-01" / "scores.jsonl").open()]
    assert scores and all(sc["reason"].startswith("grader: ") for sc in scores)
    made = [r["pairs"] for r in controls["grader"][1:] if r["pairs"]["pairs"]]  # a tiny model's iteration may tie every prompt
    assert made and all(pairs["rejected_truly_wrong"] == 1.0 for pairs in made)
    for got, want in zip(controls["sft"][1:], metrics["rows"][1:]):
        assert got["train"]["steps"] == want["train"]["steps"] > 0
    assert "compute-matched" in page


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
        "self_rewarding": {"iterations": 1, "prompts": {"n": 3}, "responses": {"k": 2, "max_new_tokens": 8},
                           "judge": {"samples": 1, "max_new_tokens": 8},
                           "dpo": {"steps": 2, "batch_size": 2, "logging_steps": 1, "lora_r": 4},
                           "chat": {"eval_prompts": 2, "seed_prompts": str(SELF_INSTRUCT_SEED_TASKS), "finish": True}},
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


def test_old_miniature_settings_say_where_they_went():
    from selftrain.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_config({"method": "self-rewarding", "self_rewarding": {"eft_format": "working", "pretrain_steps": 300}})
    assert "eft_format -> (removed" in str(err.value) and "pretrain_steps -> self_rewarding.miniature.pretrain.steps" in str(err.value)
    with pytest.raises(ConfigError) as err:  # the layout with `variant:` and both variants' fields side by side
        parse_config({"method": "self-rewarding", "self_rewarding": {"variant": "chat", "controls": ["sft"], "judge": {"finish": True}}})
    assert "controls -> self_rewarding.miniature.controls" in str(err.value)
    assert "judge.finish -> self_rewarding.chat.finish" in str(err.value)


def test_a_variant_is_a_section_and_only_one_is_set():
    from selftrain.errors import ConfigError

    with pytest.raises(ConfigError, match="set one of self_rewarding.miniature and self_rewarding.chat"):
        parse_config({"method": "self-rewarding", "self_rewarding": {"miniature": {}, "chat": {}}})
    with pytest.raises(ConfigError, match="chat needs a chat model in model.name_or_path"):
        parse_config({"method": "self-rewarding", "self_rewarding": {"chat": {}}})
    with pytest.raises(ConfigError, match="no extra|Extra inputs|controls"):  # a miniature setting in the chat section
        parse_config({"method": "self-rewarding", "model": {"name_or_path": "m"}, "self_rewarding": {"chat": {"controls": ["sft"]}}})


def test_cream_needs_a_contrastive_loss_and_remedies_are_off_unless_set():
    from selftrain.errors import ConfigError

    base = {"method": "self-rewarding", "task": {"arithmetic": {"operations": ["+", "-"]}}}

    with pytest.raises(ConfigError, match=r"consistency \(CREAM\) softens a contrastive loss"):
        parse_config({**base, "self_rewarding": {"dpo": {"loss_type": "sft"}, "remedies": {"consistency": {}}}})
    assert demo_config(0).self_rewarding.remedies.on == []
    got = parse_config({**base, "self_rewarding": {"remedies": {"meta_judge": {}, "anchor": {}}}})
    assert got.self_rewarding.remedies.on == ["meta_judge", "anchor"] and got.self_rewarding.remedies.meta_judge.share == 0.15
    with pytest.raises(ConfigError, match="share"):
        parse_config({**base, "self_rewarding": {"remedies": {"meta_judge": {"share": 1.5}}}})
