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
import re
from collections.abc import Sequence
from functools import cached_property

from selftrain.config import ArithmeticConfig
from selftrain.records import Problem, Score
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


def aligned_solution(a: int, b: int, width: int) -> str:
    """The same steps over all `width` columns, each step the same length (2-digit sums).

    >>> aligned_solution(347, 85, 4)
    '7+5+0=12 4+8+1=13 3+0+1=04 0+0+0=00 A:432'
    """
    carry, steps = 0, []
    for i in range(width):
        x, y = (a // 10**i) % 10, (b // 10**i) % 10
        s = x + y + carry
        steps.append(f"{x}+{y}+{carry}={s:02d}")
        carry = s // 10
    return " ".join(steps) + f" {MARKER}{a + b}"


def prompt_of(a: int, b: int, width: int | None = None) -> str:
    """`347+85=`, or with a width the operands zero-padded into fixed columns: `0347+0085=`."""
    return f"{a:0{width}d}+{b:0{width}d}=" if width else f"{a}+{b}="


_STEP = re.compile(r"(\d)\+(\d)\+(\d)=(\d+)")


def first_wrong_step(a: int, b: int, completion: str, width: int | None) -> str | None:
    """The first column of a worked solution that is wrong, or None when all are right.

    `width` is the aligned layout's column count (every sum two digits), None for plain.

    >>> first_wrong_step(347, 85, "7+5+0=12 4+8+1=13 3+0+1=4 A:432", None) is None
    True
    >>> first_wrong_step(347, 85, "7+5+0=12 4+8+1=14 3+0+1=4 A:432", None)
    'step 2: 4+8+1=14'
    >>> first_wrong_step(347, 85, "7+5+0=12 A:432", None)
    'missing steps: 1 of 3'
    """
    body = completion.rsplit(f" {MARKER}", 1)[0].split(" ")
    n = width or max(len(str(a)), len(str(b)))
    if len(body) != n:
        return f"{'missing' if len(body) < n else 'extra'} steps: {len(body)} of {n}"
    carry = 0
    for i, step in enumerate(body):
        m = _STEP.fullmatch(step)
        want = (a // 10**i % 10, b // 10**i % 10, carry)
        total = sum(want)
        written = f"{total:02d}" if width else str(total)
        if m is None or tuple(int(g) for g in m.groups()[:3]) != want or m.group(4) != written:
            return f"step {i + 1}: {step}"
        carry = total // 10
    return None


class StepVerifier:
    """Accepts a completion only if its final answer and every step are right.

    ReST-EM's verifier checks the final answer alone, so a few kept solutions carry a wrong
    step; this stricter one (a process check, possible here because every step of the
    embedded task can be recomputed) keeps them out.

    >>> p = Problem(id="t", prompt="12+34=", answer="46", meta={"a": 12, "b": 34})
    >>> [s.reason for s in StepVerifier(None)([p, p], ["2+4+0=6 1+3+0=4 A:46", "2+4+0=7 1+3+0=4 A:46"])]
    ['correct', 'right answer, wrong step 1: 2+4+0=7']
    """

    def __init__(self, width: int | None):
        self.width = width
        self.answers = ExactAnswerVerifier(marker=MARKER)

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        out = []
        for p, c, score in zip(problems, completions, self.answers(problems, completions)):
            bad = first_wrong_step(p.meta["a"], p.meta["b"], c, self.width) if score.accepted else None
            out.append(Score(0.0, f"right answer, wrong {bad}", score.answer) if bad else score)
        return out


def _random_operands(rng: random.Random, n: int) -> tuple[int, int]:
    lo = 0 if n == 1 else 10 ** (n - 1)
    a = rng.randint(lo, 10**n - 1)
    m = rng.randint(1, n)
    b = rng.randint(0 if m == 1 else 10 ** (m - 1), 10**m - 1)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _problem(a: int, b: int, split: str, with_solution: bool, width: int | None) -> Problem:
    n = max(len(str(a)), len(str(b)))
    solution = (aligned_solution(a, b, width) if width else worked_solution(a, b)) if with_solution else None
    return Problem(
        id=f"{split}-{a}+{b}",
        prompt=prompt_of(a, b, width),
        answer=str(a + b),
        solution=solution,
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

    @property
    def width(self) -> int | None:
        """Columns of the aligned layout: the largest size any split uses; None for plain."""
        if self.cfg.layout == "plain":
            return None
        return max([*self.cfg.human_digits, *self.cfg.pool_digits, *self.cfg.test_digits])

    @cached_property
    def _splits(self) -> dict[str, list[Problem]]:
        rng = random.Random(self.cfg.seed)
        width = self.width
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
            _problem(a, b, "test", False, width)
            for n in sorted(self.cfg.test_digits)
            for a, b in draw(n, self.cfg.test_per_bucket)
        ]
        human = [
            _problem(a, b, "human", True, width)
            for n, c in sorted(_counts(self.cfg.human_digits, self.cfg.human_size).items())
            for a, b in draw(n, c)
        ]
        pool = [
            _problem(a, b, "pool", False, width)
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

    def verifier(self) -> ExactAnswerVerifier | StepVerifier:
        if self.cfg.verifier == "steps":
            return StepVerifier(self.width)
        return ExactAnswerVerifier(marker=MARKER)

    def grader(self) -> ExactAnswerVerifier:
        """Test accuracy is final-answer accuracy, whichever verifier selects samples."""
        return ExactAnswerVerifier(marker=MARKER)


# ---------------------------------------------------------------- judging (Self-Rewarding miniature)


JUDGE_TEMPLATE_TEXT = "J:{response} P:{prompt}"
"""The miniature's judge prompt: a worked solution to judge, then the problem it answers.
The tiny model's context cannot hold the paper's 1,500-character prompt; the judgement keeps
the paper's form, a justification ending in `Score: N` on a 0-5 scale. The problem comes
last so that the judge's own working (`judge_target`) follows the operands exactly as a
solution does, rather than the response it could otherwise copy."""


def judge_score(a: int, b: int, completion: str, width: int | None) -> tuple[int, str]:
    """The grader's judgement of a worked solution: 5 when every step and the answer are
    right; else one point per right step before the first wrong one (at most 3), or 4 when
    only the final answer is wrong. The text says where it is wrong and ends in `Score: N`.

    >>> judge_score(12, 34, "2+4+0=06 1+3+0=04 A:46", 2)
    (5, 'all right Score: 5')
    >>> judge_score(12, 34, "2+4+0=06 1+3+0=05 A:56", 2)
    (1, 'step 2 wrong Score: 1')
    >>> judge_score(12, 34, "2+4+0=06 1+3+0=04 A:45", 2)
    (4, 'answer wrong Score: 4')
    """
    bad = first_wrong_step(a, b, completion, width)
    answer = completion.rsplit(MARKER, 1)[1].strip() if MARKER in completion else None
    if bad is None and answer == str(a + b):
        return 5, "all right Score: 5"
    if bad is None:
        return 4, "answer wrong Score: 4"
    m = re.match(r"step (\d+)", bad)
    if m is None:  # missing or extra steps
        return 0, "steps missing Score: 0"
    score = min(int(m.group(1)) - 1, 3)
    return score, f"step {m.group(1)} wrong Score: {score}"


def judge_target(a: int, b: int, completion: str, width: int) -> str:
    """The miniature's judgement with working: the judge solves the problem itself, column by
    column, then states whether and where the response departs from that, ending in
    `Score: N` (the grader's score, `judge_score`). A tiny model cannot check a column
    without computing it, so the judgement computes it in the open, as a chain of thought.

    >>> judge_target(12, 34, "2+4+0=06 1+3+0=05 A:56", 2)
    '2+4+0=06 1+3+0=04 A:46 step 2 wrong Score: 1'
    """
    return f"{aligned_solution(a, b, width)} {judge_score(a, b, completion, width)[1]}"


def corrupt_solution(a: int, b: int, width: int | None, rng: random.Random, mistakes: int = 1) -> str:
    """A worked solution with `mistakes` mistakes of the kinds a model makes: a wrong column
    sum, a dropped carry, an operand digit miscopied into a step (its sum then consistent
    with the wrong digit), or a wrong digit in the final answer.

    >>> import random
    >>> s = corrupt_solution(347, 85, 4, random.Random(0))
    >>> s != aligned_solution(347, 85, 4) and judge_score(347, 85, s, 4)[0] < 5
    True
    """
    right = aligned_solution(a, b, width) if width else worked_solution(a, b)
    body, answer = right.rsplit(f" {MARKER}", 1)
    steps = body.split(" ")
    for _ in range(mistakes):
        kind = rng.randrange(4)
        if kind == 3:
            digits = list(answer)
            i = rng.randrange(len(digits))
            digits[i] = str((int(digits[i]) + rng.randint(1, 9)) % 10)
            answer = "".join(digits)
            continue
        i = rng.randrange(len(steps))
        x, y, c, s = _STEP.fullmatch(steps[i]).groups()
        if kind == 2:  # a miscopied operand digit, summed as written
            if rng.random() < 0.5:
                x = str((int(x) + rng.randint(1, 9)) % 10)
            else:
                y = str((int(y) + rng.randint(1, 9)) % 10)
            total = int(x) + int(y) + int(c)
        else:
            total = int(s) + (rng.choice([-1, 1]) if kind == 0 else (-1 if c == "1" else 1))
            total = total if total >= 0 else 1
        steps[i] = f"{x}+{y}+{c}=" + (f"{total:02d}" if width else str(total))
    return f"{' '.join(steps)} {MARKER}{answer}"
