"""The embedded task: multi-digit addition (and, optionally, subtraction) with
digit-by-digit worked solutions.

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
from dataclasses import replace
from functools import cached_property, partial
from typing import Literal

from pydantic import Field, model_validator

from selftrain.config import _Section
from selftrain.records import Problem, Score
from selftrain.tasks.base import NotAProblem, Task
from selftrain.verifiers.exact import ExactAnswerVerifier, integer_answer

MARKER = "A:"


class ArithmeticConfig(_Section):
    """The embedded task: addition (and subtraction) with digit-by-digit worked solutions."""

    seed: int = 1234
    """Seed of the problem generator (fixed across run seeds, so runs share one data set)."""
    human_size: int = Field(300, ge=1)
    """Problems with worked solutions: the "human data". Each split takes at most a third
    of the 1-digit problems still free (there are only 100), so a split can come out a
    little smaller than asked: the default gives 292."""
    human_digits: dict[int, float] = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.1}
    """Share of human problems per size (digits of the larger operand)."""
    pool_size: int = Field(1000, ge=0)
    """Problems with final answers only, that self-training samples on (0: none, for a method
    whose model writes its own: `own-problems`)."""
    pool_digits: dict[int, float] = {1: 0.05, 2: 0.15, 3: 0.35, 4: 0.45}
    """Share of pool problems per size."""
    test_per_bucket: int = Field(150, ge=1)
    """Held-out problems per size (fewer for 1 digit, which has only 100 problems in all)."""
    test_digits: list[int] = [1, 2, 3, 4]
    """Sizes in the test set; each is a bucket of the report."""
    verifier: Literal["answer", "steps"] = "answer"
    """`answer`: the final answer alone decides, as in ReST-EM; `steps`: every step must be
    right too (a process check the embedded task allows)."""
    operations: list[Literal["+", "-"]] = ["+"]
    """`+` addition; `-` subtraction (minuend >= subtrahend, borrows written like carries:
    `0432-0085=` -> `2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347`; not in the plain layout).
    Each size's problems are shared evenly between the operations; with `-` present, sums
    stay below 10^columns."""
    layout: Literal["aligned", "plain", "reversed"] = "aligned"
    """`aligned`: operands zero-padded to the largest size and every column written, each
    step the same width, as on squared paper (`0347+0085=` -> `7+5+0=12 ... 0+0+0=00 A:432`);
    `plain`: `347+85=` -> `7+5+0=12 4+8+1=13 3+0+1=4 A:432`;
    `reversed` (Lee et al. 2025): every number written units first and zero-padded to the
    largest size (the answer to one column more), no worked steps (`7430+5800=` ->
    `A:23400`, i.e. 347+85=432). Each answer digit then sits at the same distance from the
    two operand digits it needs at every column, which is what lets a model trained on
    short problems have a chance at longer ones (docs/curriculum.md)."""

    @model_validator(mode="after")
    def _check(self) -> ArithmeticConfig:
        for name in ("human_digits", "pool_digits"):
            shares = getattr(self, name)
            if not shares or any(d < 1 or d > 9 for d in shares) or any(w < 0 for w in shares.values()):
                raise ValueError(f"{name}: sizes must be 1..9 digits with non-negative shares")
            if sum(shares.values()) <= 0:
                raise ValueError(f"{name}: shares must not all be zero")
        if not self.test_digits or any(d < 1 or d > 9 for d in self.test_digits):
            raise ValueError("test_digits: sizes must be 1..9")
        if not self.operations or len(set(self.operations)) != len(self.operations):
            raise ValueError("operations: one or both of '+' and '-', each once")
        if "-" in self.operations and self.layout == "plain":
            raise ValueError("operations: subtraction is not written in the plain layout (layout: aligned or reversed)")
        if self.verifier == "steps" and self.layout == "reversed":
            raise ValueError("verifier: steps checks worked steps, which the reversed layout does not write")
        return self


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


def _column(x: int, y: int, c: int, op: str) -> tuple[int, str]:
    """One column: the carry (borrow) out and the step's two-digit result, carry first."""
    if op == "+":
        total = x + y + c
        return total // 10, f"{total:02d}"
    d = x - y - c
    return int(d < 0), f"{int(d < 0)}{d % 10}"


def aligned_solution(a: int, b: int, width: int, op: str = "+") -> str:
    """The same steps over all `width` columns, each step the same length (2-digit sums).
    Subtraction mirrors it: each step writes the borrow out, then the digit.

    >>> aligned_solution(347, 85, 4)
    '7+5+0=12 4+8+1=13 3+0+1=04 0+0+0=00 A:432'
    >>> aligned_solution(432, 85, 4, "-")
    '2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347'
    """
    carry, steps = 0, []
    for i in range(width):
        x, y = (a // 10**i) % 10, (b // 10**i) % 10
        out, written = _column(x, y, carry, op)
        steps.append(f"{x}{op}{y}{op}{carry}={written}")
        carry = out
    return " ".join(steps) + f" {MARKER}{apply(a, b, op)}"


def apply(a: int, b: int, op: str) -> int:
    return a + b if op == "+" else a - b


def prompt_of(a: int, b: int, width: int | None = None, op: str = "+", reverse: bool = False) -> str:
    """`347+85=`, or with a width the operands zero-padded into fixed columns: `0347+0085=`,
    and with `reverse` written units first: `7430+5800=`."""
    if reverse:
        return f"{a:0{width}d}"[::-1] + op + f"{b:0{width}d}"[::-1] + "="
    return f"{a:0{width}d}{op}{b:0{width}d}=" if width else f"{a}{op}{b}="


def reversed_solution(a: int, b: int, width: int, op: str = "+") -> str:
    """The `reversed` layout's solution: the result units first, padded to `width + 1` digits.

    >>> reversed_solution(347, 85, 4), reversed_solution(432, 85, 4, "-")
    ('A:23400', 'A:74300')
    """
    return MARKER + str(apply(a, b, op)).zfill(width + 1)[::-1]


def reversed_answer(text: str, digits: int | None = None) -> str | None:
    """The integer a reversed answer writes (`23400` -> `432`), or None; with `digits`, None
    unless it writes exactly that many (the layout pads every answer to one length, so a
    longer or shorter one is malformed even when its value is right).

    >>> reversed_answer("23400"), reversed_answer(" 5 "), reversed_answer("4x"), reversed_answer("234000", 5)
    ('432', '5', None, None)
    """
    text = text.strip()
    if not text.isdigit() or (digits is not None and len(text) != digits):
        return None
    return integer_answer(text[::-1])


_STEP = re.compile(r"(\d)[+-](\d)[+-](\d)=(\d+)")


def first_wrong_step(a: int, b: int, completion: str, width: int | None, op: str = "+") -> str | None:
    """The first column of a worked solution that is wrong, or None when all are right.

    `width` is the aligned layout's column count (every sum two digits), None for plain.

    >>> first_wrong_step(347, 85, "7+5+0=12 4+8+1=13 3+0+1=4 A:432", None) is None
    True
    >>> first_wrong_step(347, 85, "7+5+0=12 4+8+1=14 3+0+1=4 A:432", None)
    'step 2: 4+8+1=14'
    >>> first_wrong_step(347, 85, "7+5+0=12 A:432", None)
    'missing steps: 1 of 3'
    >>> first_wrong_step(432, 85, "2-5-0=17 3-8-1=14 4-0-1=13 0-0-0=00 A:347", 4, "-")
    'step 3: 4-0-1=13'
    """
    body = completion.rsplit(f" {MARKER}", 1)[0].split(" ")
    n = width or max(len(str(a)), len(str(b)))
    if len(body) != n:
        return f"{'missing' if len(body) < n else 'extra'} steps: {len(body)} of {n}"
    carry = 0
    for i, step in enumerate(body):
        m = _STEP.fullmatch(step)
        want = (a // 10**i % 10, b // 10**i % 10, carry)
        out, written = _column(*want, op)
        if not width:
            written = str(int(written))
        if m is None or not step.startswith(f"{want[0]}{op}{want[1]}{op}") or \
                tuple(int(g) for g in m.groups()[:3]) != want or m.group(4) != written:
            return f"step {i + 1}: {step}"
        carry = out
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

    def describe(self) -> dict:
        return {"kind": "steps", "width": self.width, "answers": self.answers.describe()}

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        out = []
        for p, c, score in zip(problems, completions, self.answers(problems, completions)):
            bad = first_wrong_step(p.meta["a"], p.meta["b"], c, self.width, p.meta.get("op", "+")) if score.accepted else None
            out.append(Score(0.0, f"right answer, wrong {bad}", score.answer) if bad else score)
        return out


def _random_operands(rng: random.Random, n: int) -> tuple[int, int]:
    lo = 0 if n == 1 else 10 ** (n - 1)
    a = rng.randint(lo, 10**n - 1)
    m = rng.randint(1, n)
    b = rng.randint(0 if m == 1 else 10 ** (m - 1), 10**m - 1)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _solution(a: int, b: int, width: int | None, op: str, layout: str) -> str:
    if layout == "reversed":
        return reversed_solution(a, b, width or 1, op)
    return aligned_solution(a, b, width, op) if width else worked_solution(a, b)


def _problem(a: int, b: int, split: str, with_solution: bool, width: int | None, op: str = "+",
             layout: str = "aligned") -> Problem:
    n = max(len(str(a)), len(str(b)))
    return Problem(
        id=f"{split}-{a}{op}{b}",
        prompt=prompt_of(a, b, width, op, reverse=layout == "reversed"),
        answer=str(apply(a, b, op)),
        solution=_solution(a, b, width, op, layout) if with_solution else None,
        bucket=str(n),
        meta={"a": a, "b": b, "digits": n, **({"op": op} if op != "+" else {})},
    )


def operation(p: Problem) -> str:
    """`+` or `-` (a subtraction's meta says so; an addition's need not)."""
    return p.meta.get("op", "+")


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
    config = ArithmeticConfig

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
        ops = self.cfg.operations
        used: set[tuple[str, int, int]] = set()
        used_by_size: dict[tuple[str, int], int] = {}

        def fits(a: int, b: int, op: str) -> bool:
            # with subtraction in the task, sums stay within the columns, so that every
            # problem's inverse (the Self-Rewarding miniature's check) fits them too
            return a + b < 10**width if op == "+" and "-" in ops and width else True

        def draw(n: int, count: int, op: str) -> list[tuple[int, int]]:
            # Problems of 1 digit are few (100 ordered pairs, 55 with a >= b), so each split
            # takes at most a third of those still free; larger sizes have room to spare.
            if n == 1:
                count = min(count, ((100 if op == "+" else 55) - used_by_size.get((op, 1), 0)) // 3)
            used_by_size[op, n] = used_by_size.get((op, n), 0) + count
            out: list[tuple[int, int]] = []
            tries = 0
            while len(out) < count:
                tries += 1
                if tries > 1000 * (count + 10):
                    raise ValueError(f"cannot draw {count} distinct {n}-digit problems")
                a, b = _random_operands(rng, n)
                if op == "-" and a < b:
                    a, b = b, a
                if (op, a, b) not in used and fits(a, b, op):
                    used.add((op, a, b))
                    out.append((a, b))
            return out

        def split(name: str, counts: dict[int, int], with_solution: bool) -> list[Problem]:
            return [_problem(a, b, name, with_solution, width, op, self.cfg.layout)
                    for n, c in sorted(counts.items())
                    for op, c_op in _counts(dict.fromkeys(ops, 1.0), c).items()
                    for a, b in draw(n, c_op, op)]

        test = split("test", dict.fromkeys(self.cfg.test_digits, self.cfg.test_per_bucket), False)
        human = split("human", _counts(self.cfg.human_digits, self.cfg.human_size), True)
        pool = split("pool", _counts(self.cfg.pool_digits, self.cfg.pool_size), False)
        rng.shuffle(human)
        rng.shuffle(pool)
        return {"human": human, "pool": pool, "test": test}

    def human(self) -> list[Problem]:
        return self._splits["human"]

    def pool(self) -> list[Problem]:
        return self._splits["pool"]

    def test(self) -> list[Problem]:
        return self._splits["test"]

    def level(self, problem: Problem) -> int:
        """A problem's difficulty level for a curriculum: its size in digits."""
        return problem.meta["digits"]

    def oracle(self, written: str, id: str) -> Problem:
        """A problem the model wrote, in this task's layout (`0347+0085=`, `7430+5800=`,
        `347+85=`), with its answer computed exactly; `NotAProblem` for anything else: another
        form, an operation the task does not use, a subtraction below zero, a sum past the
        columns.

        >>> task = ArithmeticTask(ArithmeticConfig(layout="reversed", test_digits=[1, 2, 3, 4]))
        >>> p = task.oracle("7430+5800=", "w1")
        >>> p.answer, p.bucket, task.grader()([p], ["A:23400"])[0].accepted
        ('432', '3', True)
        >>> task.oracle("7430+580=", "w2")
        Traceback (most recent call last):
        ...
        selftrain.tasks.base.NotAProblem: not the task's form: 7430+580= (reversed layout, 4 columns)
        >>> task.oracle("74301+5800=", "w3")
        Traceback (most recent call last):
        ...
        selftrain.tasks.base.NotAProblem: an operand of 5 digits: the task has 4 columns
        """
        text = written.strip()
        m = re.fullmatch(r"(\d+)([+-])(\d+)=", text)
        reverse, width = self.cfg.layout == "reversed", self.width
        if m is None:
            raise NotAProblem(f"not an addition or subtraction: {text[:40]!r}")
        (sa, op, sb) = m.groups()
        a, b = (int(sa[::-1]), int(sb[::-1])) if reverse else (int(sa), int(sb))
        if width and max(len(sa), len(sb)) > width:
            raise NotAProblem(f"an operand of {max(len(sa), len(sb))} digits: the task has {width} columns")
        if prompt_of(a, b, width, op, reverse) != text:
            raise NotAProblem(f"not the task's form: {text} ({self.cfg.layout} layout, {width or 'any'} columns)")
        if op not in self.cfg.operations:
            raise NotAProblem(f"operation {op} is not the task's ({', '.join(self.cfg.operations)})")
        if op == "-" and a < b:
            raise NotAProblem(f"{a}-{b} is below zero")
        if width and op == "+" and "-" in self.cfg.operations and a + b >= 10**width:
            raise NotAProblem(f"the sum {a + b} needs more than {width} columns")
        return replace(_problem(a, b, "own", False, width, op, self.cfg.layout), id=id)

    def verifier(self) -> ExactAnswerVerifier | StepVerifier:
        if self.cfg.verifier == "steps":
            return StepVerifier(self.width)
        return self.grader()

    def grader(self) -> ExactAnswerVerifier:
        """Test accuracy is final-answer accuracy, whichever verifier selects samples."""
        if self.cfg.layout == "reversed":
            return ExactAnswerVerifier(marker=MARKER, normalize=partial(reversed_answer, digits=(self.width or 1) + 1),
                                       reference=integer_answer)
        return ExactAnswerVerifier(marker=MARKER)


# ---------------------------------------------------------------- reading answers and prompts back


def final_answer(completion: str) -> str | None:
    """The final answer as the grader reads it (`ExactAnswerVerifier.extract`), when it is a
    whole number of no sign; else None.

    >>> final_answer("7+5+0=12 A:0432"), final_answer("7+5+0=12"), final_answer("A:4x"), final_answer("A:-3")
    ('432', None, None, None)
    """
    answer = ExactAnswerVerifier(marker=MARKER).extract(completion)
    return answer if answer is not None and answer.isdigit() else None


def operands(prompt: str) -> tuple[int, str, int] | None:
    """`a`, the operation and `b` of a problem's prompt (`0347+0085=`), or None for another text.

    >>> operands("0347+0085="), operands("347-85="), operands("12+=")
    ((347, '+', 85), (347, '-', 85), None)
    """
    m = re.fullmatch(r"(\d+)([+-])(\d+)=", prompt)
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None
