"""The embedded task: worked solutions are right, splits are disjoint, grading is exact."""

import random
import re

from selftrain.records import Problem
from selftrain.tasks.arithmetic import ArithmeticConfig, ArithmeticTask, aligned_solution, worked_solution


def check_steps(a: int, b: int, text: str, width: int | None = None) -> bool:
    """Re-derive every column of a worked solution independently."""
    steps, answer = text.rsplit(" A:", 1)
    carry, digits = 0, []
    columns = steps.split(" ")
    if width is not None and len(columns) != width:
        return False
    for i, step in enumerate(columns):
        pattern = r"(\d)\+(\d)\+(\d)=(\d\d)" if width else r"(\d)\+(\d)\+(\d)=(\d+)"
        x, y, c, s = map(int, re.fullmatch(pattern, step).groups())
        if x != (a // 10**i) % 10 or y != (b // 10**i) % 10 or c != carry or s != x + y + c:
            return False
        carry, digits = s // 10, digits + [s % 10]
    return int(answer) == a + b == int((str(carry) if carry else "") + "".join(map(str, reversed(digits))))


def test_worked_solutions_are_correct_column_by_column():
    rng = random.Random(0)
    for _ in range(2000):
        a, b = rng.randint(0, 10 ** rng.randint(1, 7) - 1), rng.randint(0, 10 ** rng.randint(1, 7) - 1)
        assert check_steps(a, b, worked_solution(a, b)), (a, b)
        assert check_steps(a, b, aligned_solution(a, b, 8), width=8), (a, b)
    assert not check_steps(12, 34, "2+4+0=06 1+3+0=04 A:47")  # a wrong answer is caught


def test_layouts():
    aligned = ArithmeticTask(ArithmeticConfig(human_size=10, pool_size=10, test_per_bucket=3)).human()
    plain = ArithmeticTask(ArithmeticConfig(human_size=10, pool_size=10, test_per_bucket=3, layout="plain")).human()
    assert [p.meta for p in aligned] == [p.meta for p in plain]  # same problems, written two ways
    for p, q in zip(aligned, plain):
        a, b = p.meta["a"], p.meta["b"]
        assert p.prompt == f"{a:04d}+{b:04d}=" and check_steps(a, b, p.solution, width=4)
        assert q.prompt == f"{a}+{b}=" and check_steps(a, b, q.solution)


def test_splits_have_the_asked_sizes_are_disjoint_and_bucketed():
    cfg = ArithmeticConfig(
        human_size=120, pool_size=400, pool_digits={1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}, test_per_bucket=50, test_digits=[1, 2, 3, 4]
    )
    task = ArithmeticTask(cfg)
    human, pool, test = task.human(), task.pool(), task.test()
    assert len(human) == 120 and all(p.solution for p in human)
    assert all(p.solution is None for p in pool)
    # sizes of 2+ digits get exactly their share; 1-digit problems are few (100 in all), so
    # each split takes at most a third of those still free
    assert sum(p.bucket != "1" for p in pool) == 360 and 0 < sum(p.bucket == "1" for p in pool) <= 40
    keys = [lambda ps: {(p.meta["a"], p.meta["b"]) for p in ps}][0]
    assert not keys(human) & keys(pool) and not keys(human) & keys(test) and not keys(pool) & keys(test)
    buckets = {p.bucket for p in test}
    assert buckets == {"1", "2", "3", "4"}
    assert sum(p.bucket == "3" for p in test) == 50
    for p in human + pool + test:
        assert p.bucket == str(max(len(str(p.meta["a"])), len(str(p.meta["b"]))))
        assert int(p.answer) == p.meta["a"] + p.meta["b"]


def test_same_seed_same_data_other_seed_other_data():
    a = ArithmeticTask(ArithmeticConfig(seed=1)).pool()
    assert a == ArithmeticTask(ArithmeticConfig(seed=1)).pool()
    assert a != ArithmeticTask(ArithmeticConfig(seed=2)).pool()


def test_verifier_accepts_gold_and_rejects_perturbed_answers():
    task = ArithmeticTask(ArithmeticConfig(human_size=200))
    v = task.verifier()
    human = task.human()
    assert all(s.accepted for s in v(human, [p.solution for p in human]))
    wrong = [p.solution.rsplit("A:", 1)[0] + f"A:{int(p.answer) + d}" for p, d in zip(human, [1, -1, 10] * 100)]
    assert not any(s.accepted for s in v(human, wrong))
    p = Problem(id="x", prompt="1+1=", answer="2")
    assert [s.reason for s in v([p] * 4, ["", "A:two", "A:2 A:3", "1+1+0=2 A:02"])] == [
        'no final answer after "A:"',
        "final answer is not a number",
        "wrong answer 3, expected 2",
        "correct",
    ]
