"""The oracles of the own-problems method: the answer of a problem the model writes is computed
(arithmetic evaluated, an expression evaluated, a program run in the sandbox), never voted;
an oracle that raises, hangs or returns garbage costs its own problem, dropped with its
reason, and nothing is kept from it."""

from __future__ import annotations

import re

import pytest

from selftrain import stages
from selftrain.artifacts import read_jsonl, write_jsonl
from selftrain.methods import parse_config
from selftrain.tasks.base import NotAProblem

MISBEHAVING = '''
import time

from selftrain.records import Problem
from selftrain.tasks.arithmetic import ArithmeticConfig, ArithmeticTask


class Misbehaving(ArithmeticTask):
    """The embedded task, with an oracle of your own that misbehaves on purpose."""

    name = "misbehaving"
    config = ArithmeticConfig

    def oracle(self, written, id):
        if written.startswith("9"):
            raise ValueError("cannot read " + written)
        if written.startswith("8"):
            time.sleep(3600)
        if written.startswith("7"):
            return "garbage"
        return super().oracle(written, id)
'''


def test_an_oracle_that_raises_hangs_or_returns_garbage_costs_its_own_problem_only(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(MISBEHAVING)
    monkeypatch.chdir(tmp_path)
    cfg = parse_config({"name": "oracle", "task": {"name": "mine.py:Misbehaving", "settings": {
        "layout": "reversed", "human_size": 20, "human_digits": {1: 1.0}, "pool_size": 0, "test_per_bucket": 3,
        "test_digits": [1, 2, 3]}}})
    written = ["1200+3400=", "9000+1000=", "8000+1000=", "7000+1000=", "1200+3400=", "5x=", "2000+3000="]
    with stages.open_run(cfg, tmp_path / "run") as ctx:
        proposed = ctx.path("iter-01", "proposed.jsonl")
        write_jsonl(proposed, ({"id": f"w{i}", "request": "", "written": w} for i, w in enumerate(written)))
        got = stages.own_problems.ground_truth(ctx, "iter-01", stages.Artifact.of("fp", "proposed", proposed=proposed),
                                               seeds=[], earlier=[], timeout=3)
    kept = {r["id"]: r for r in read_jsonl(got["problems"])}
    dropped = {r["id"]: r["reason"] for r in read_jsonl(got["rejected"])}
    assert sorted(kept) == ["w0", "w6"] and kept["w0"]["answer"] == "64" and kept["w6"]["answer"] == "5"
    assert dropped["w1"].startswith("the oracle raised ValueError: cannot read 9000+1000= (mine.py:")
    assert dropped["w2"] == "the oracle timed out after 3 s"
    assert dropped["w3"] == "the oracle returned 'garbage'"
    assert dropped["w4"].startswith("exact duplicate of w0") and dropped["w5"].startswith("not a problem: not an addition or subtraction")


def test_the_expression_oracle_evaluates_what_the_question_states():
    from selftrain.tasks.dataset import DatasetConfig, DatasetTask

    task = DatasetTask(DatasetConfig(path="unused.jsonl", verifier="math", oracle="expression",
                                     columns={"prompt": "question", "answer": "answer", "expression": "expression"},
                                     prompt_template="Question: {prompt}\nAnswer:"))
    p = task.oracle("Tom has 45 stamps and gets 17 more. How many now?\nExpression: 45 + 17", "w1")
    assert p.answer == "62" and p.prompt.startswith("Question: Tom has 45") and p.bucket == "2"
    assert task.written(p) == "Tom has 45 stamps and gets 17 more. How many now?\nExpression: 45 + 17"
    for text, why in (("Tom has 4 apples.\nExpression: 4 + 9", "which the question does not state"),
                      ("Tom has 4 and 3.\nExpression: 4 / 3", "not a whole number"),
                      ("Tom has 4 and 3.\nExpression: __import__('os')", "not + - * / of whole numbers"),
                      ("How many?", "no question and `Expression:` line")):
        with pytest.raises(NotAProblem, match=re.escape(why)):
            task.oracle(text, "w")


def test_the_deduction_oracle_runs_the_program_in_the_sandbox():
    from selftrain.tasks.deduction import DeductionConfig, DeductionTask

    task = DeductionTask(DeductionConfig(human_size=8, pool_size=0, test_size=4, timeout=2))
    human = task.human()
    assert human and all(task.verifier()([p], [p.solution])[0].accepted for p in human)  # the written output is right
    again = task.oracle(task.written(human[0]), "again")
    assert again.answer == human[0].answer and again.prompt == human[0].prompt
    assert task.oracle("def f(x):\n    return [v + 1 for v in x]\nInput: [1, 2]", "w").answer == "[2, 3]"
    for program, why in (("def f(x):\n    while True:\n        pass\nInput: 1", "timed out"),
                         ("def f(x):\n    return open('/etc/passwd').read() * 10\nInput: 1", "no plain value|longer than 200"),
                         ("def f(x):\n    return 1 / 0\nInput: 1", "raised ZeroDivisionError"),
                         ("print('hi')\nInput: 1", "does not start with"), ("def f(x):\n    return x", "no `Input:`")):
        with pytest.raises(NotAProblem, match=why):
            task.oracle(program, "w")
