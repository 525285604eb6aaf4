"""The math verifier: extraction, equivalence, deadlines from any thread, and gold answers
against gold (GSM8K 1319/1319, MATH-500 >= 498/500) with perturbed answers rejected."""

import json
import threading
from pathlib import Path

import pytest

from selftrain.records import Problem
from selftrain.verifiers.audit import perturbations
from selftrain.verifiers.math import MathVerifier, extract_answer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=5.0)
    yield v
    v.close()


@pytest.mark.parametrize(
    "completion, answer, how",
    [
        ("First \\boxed{1} then \\boxed{\\frac{2}{3}}", "\\frac{2}{3}", "boxed"),
        ("\\boxed{\\{1, 2\\}} and so on", "\\{1, 2\\}", "boxed"),
        ("\\fbox{7}", "7", "boxed"),
        ("Thus, the answer is $\\sqrt{2}$.", "\\sqrt{2}", "the answer is"),
        ("The answer is: 12\nwhich is even", "12", "the answer is"),
        ("So 3*4=12.\n#### 12", "12", "####"),
        ("She pays $1,200 and then 5 more.", "5", "last number"),
        ("-3 is negative", "-3", "last number"),
        ("no number here", None, "no final answer found"),
    ],
)
def test_extraction_order(completion, answer, how):
    assert extract_answer(completion) == (answer, how)


@pytest.mark.parametrize(
    "reference, completion, accepted",
    [
        ("72", "so #### 72", True),
        ("1000", "The answer is $1,000.", True),
        ("0.5", "\\boxed{\\frac{1}{2}}", True),
        ("\\frac{14}{3}", "\\boxed{4\\frac{2}{3}}", True),
        ("p - q", "\\boxed{-q + p}", True),
        ("\\text{(C)}", "\\boxed{C}", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\pi/2)}", True),
        ("x^2+2x", "The answer is $x(x+2)$.", True),
        ("72", "#### 73", False),
        ("\\frac{14}{3}", "\\boxed{\\frac{14}{5}}", False),
        ("p - q", "\\boxed{q - p}", False),
        ("\\text{(C)}", "\\boxed{D}", False),
        ("5", "nothing to see", False),
    ],
)
def test_equivalence(verifier, reference, completion, accepted):
    score = verifier([Problem("p", "", reference)], [completion])[0]
    assert score.accepted is accepted, score
    assert score.reason


def test_deadline_works_from_a_worker_thread_and_the_pool_recovers():
    v = MathVerifier(timeout=1.0)
    try:
        out = {}
        hard = "\\boxed{9^{9^{9^{9^{9}}}} - 9^{9^{9^{9^{9}}}} + 2}"  # sympy would take ages
        p, q = Problem("1", "", "2"), Problem("2", "", "\\sqrt{4}")
        thread = threading.Thread(target=lambda: out.update(s=v([p, q], [hard, "\\boxed{2}"])))
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        slow, fine = out["s"]
        assert slow.value is None and "timed out" in slow.reason
        assert fine.accepted
        assert v([q], ["The answer is $2$."])[0].accepted  # a fresh worker took over
    finally:
        v.close()


def _gsm8k_test():
    path = DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = [json.loads(line) for line in path.open()]
    return [Problem(str(i), r["question"], r["answer"].rsplit("####", 1)[1].strip()) for i, r in enumerate(rows)], [
        r["answer"] for r in rows
    ]


def _math500():
    path = DATA / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = [json.loads(line) for line in path.open()]
    return [Problem(r["unique_id"], r["problem"], r["answer"]) for r in rows], [r["solution"] for r in rows]


def test_gsm8k_gold_against_gold_and_perturbed(verifier):
    problems, solutions = _gsm8k_test()
    assert sum(s.accepted for s in verifier(problems, solutions)) == len(problems) == 1319
    wrong_p, wrong_c = [], []
    for i, p in enumerate(problems):
        for _kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            wrong_p.append(p)
            wrong_c.append(f"#### {bad}")
    accepted = sum(s.accepted for s in verifier(wrong_p, wrong_c))
    assert accepted <= 0.005 * len(wrong_p)


@pytest.mark.slow
def test_math500_gold_against_gold_and_perturbed(verifier):
    problems, solutions = _math500()
    scores = verifier(problems, solutions)
    assert sum(s.accepted for s in scores) >= 498
    wrong_p, wrong_c = [], []
    for i, p in enumerate(problems):
        for _kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            wrong_p.append(p)
            wrong_c.append(f"\\boxed{{{bad}}}")
    accepted = sum(s.accepted for s in verifier(wrong_p, wrong_c))
    assert accepted <= 0.005 * len(wrong_p), f"{accepted} of {len(wrong_p)} perturbed answers accepted"
