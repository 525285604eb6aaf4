"""The embedded task: multi-digit addition with digit-by-digit worked solutions.

Generated from a seed, nothing downloaded. A problem and its worked solution:

    prompt:     "347+85="
    completion: "7+5+0=12 4+8+1=13 3+0+1=4 A:432"

Each step adds one column from the right: the two digits (0 past an operand's end), the
carry in, and their sum; the final answer follows the marker `A:`. The grader checks only
the final answer, exactly.

Sizes: an n-digit problem has one operand of exactly n digits and the other of 1..n
digits; n is the problem's difficulty bucket. The three splits are disjoint.
"""

from __future__ import annotations

import random
from functools import cached_property

from selftrain.config import ArithmeticConfig
from selftrain.records import Problem
from selftrain.tasks.base import Task
from selftrain.verifiers.exact import ExactAnswerVerifier

MARKER = "A:"


def worked_solution(a: int, b: int) -> str:
    """The step-by-step solution of a + b, ending in the marked final answer.

    >>> worked_solution(347, 85)
    '7+5+0=12 4+8+1=13 3+0+1=4 A:432'
    >>> worked_solution(99, 1)
    '9+1+0=10 9+0+1=10 A:100'
    >>> worked_solution(0, 0)
    '0+0+0=0 A:0'
    """
    da, db = str(a)[::-1], str(b)[::-1]
    carry, steps = 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        steps.append(f"{x}+{y}+{carry}={s}")
        carry = s // 10
    return " ".join(steps) + f" {MARKER}{a + b}"


def prompt_of(a: int, b: int) -> str:
    return f"{a}+{b}="


def _random_operands(rng: random.Random, n: int) -> tuple[int, int]:
    lo = 0 if n == 1 else 10 ** (n - 1)
    a = rng.randint(lo, 10**n - 1)
    m = rng.randint(1, n)
    b = rng.randint(0 if m == 1 else 10 ** (m - 1), 10**m - 1)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _problem(a: int, b: int, split: str, with_solution: bool) -> Problem:
    n = max(len(str(a)), len(str(b)))
    return Problem(
        id=f"{split}-{a}+{b}",
        prompt=prompt_of(a, b),
        answer=str(a + b),
        solution=worked_solution(a, b) if with_solution else None,
        bucket=str(n),
        meta={"a": a, "b": b, "digits": n},
    )


def _counts(shares: dict[int, float], total: int) -> dict[int, int]:
    """Split `total` over sizes by share, largest remainders first; sums to `total`.

    >>> _counts({1: 0.1, 2: 0.3, 3: 0.6}, 10)
    {1: 1, 2: 3, 3: 6}
    """
    z = sum(shares.values())
    exact = {d: total * w / z for d, w in shares.items()}
    counts = {d: int(v) for d, v in exact.items()}
    rest = total - sum(counts.values())
    for d in sorted(exact, key=lambda d: exact[d] - counts[d], reverse=True)[:rest]:
        counts[d] += 1
    return counts


class ArithmeticTask(Task):
    name = "arithmetic"

    def __init__(self, cfg: ArithmeticConfig | None = None):
        self.cfg = cfg or ArithmeticConfig()

    @cached_property
    def _splits(self) -> dict[str, list[Problem]]:
        rng = random.Random(self.cfg.seed)
        used: set[tuple[int, int]] = set()
        used_by_size: dict[int, int] = {}

        def draw(n: int, count: int) -> list[tuple[int, int]]:
            # Problems of 1 digit are few (100 ordered pairs), so each split takes at most
            # a third of those still free; larger sizes have room to spare.
            if n == 1:
                count = min(count, (100 - used_by_size.get(1, 0)) // 3)
            used_by_size[n] = used_by_size.get(n, 0) + count
            out: list[tuple[int, int]] = []
            tries = 0
            while len(out) < count:
                tries += 1
                if tries > 1000 * (count + 10):
                    raise ValueError(f"cannot draw {count} distinct {n}-digit problems")
                pair = _random_operands(rng, n)
                if pair not in used:
                    used.add(pair)
                    out.append(pair)
            return out

        test = [
            _problem(a, b, "test", with_solution=False)
            for n in sorted(self.cfg.test_digits)
            for a, b in draw(n, self.cfg.test_per_bucket)
        ]
        human = [
            _problem(a, b, "human", with_solution=True)
            for n, c in sorted(_counts(self.cfg.human_digits, self.cfg.human_size).items())
            for a, b in draw(n, c)
        ]
        pool = [
            _problem(a, b, "pool", with_solution=False)
            for n, c in sorted(_counts(self.cfg.pool_digits, self.cfg.pool_size).items())
            for a, b in draw(n, c)
        ]
        rng.shuffle(human)
        rng.shuffle(pool)
        return {"human": human, "pool": pool, "test": test}

    def human(self) -> list[Problem]:
        return self._splits["human"]

    def pool(self) -> list[Problem]:
        return self._splits["pool"]

    def test(self) -> list[Problem]:
        return self._splits["test"]

    def verifier(self) -> ExactAnswerVerifier:
        return ExactAnswerVerifier(marker=MARKER)
