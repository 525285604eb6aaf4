"""Deduction (Absolute Zero, arXiv 2505.03335): given a small Python program and an input,
write what the program returns. The answer is computed, never voted: the program runs on the
input in the sandbox (`verifiers.sandbox`), and what it returns is the reference. So the
task has an oracle for problems the model writes itself (`own-problems`): a program and an
input, run.

    Program:
    def f(x):
        return sorted(x)[::-1]
    Input: [3, 1, 2]
    Output:                      ->  the answer: [3, 2, 1]

The problems are drawn from a seed by templates (list, string and number functions with
random constants and inputs): human (with the output written: the worked solution), pool,
and test, disjoint. The verifier compares the literal after the last `Output:` with the
reference as values (`ast.literal_eval`), so `[3,2,1]` is `[3, 2, 1]`.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Sequence
from functools import cached_property

from pydantic import Field

from selftrain.records import Problem, Score
from selftrain.tasks.base import NotAProblem, Task, TaskSettings
from selftrain.verifiers.base import Verifier

TEMPLATES = (
    ("def f(x):\n    return sorted(x)[::-1]", "list"),
    ("def f(x):\n    return [v * {a} for v in x if v % 2 == {b}]", "list"),
    ("def f(x):\n    return sum(v for v in x if v > {a})", "list"),
    ("def f(x):\n    return x[{b}:] + x[:{b}]", "list"),
    ("def f(x):\n    return max(x) - min(x) + {a}", "list"),
    ("def f(s):\n    return s[::-1].upper()", "str"),
    ("def f(s):\n    return s.count('{c}') * {a}", "str"),
    ("def f(s):\n    return ''.join(sorted(set(s)))", "str"),
    ("def f(s):\n    return s.replace('{c}', '{d}')[{b}:]", "str"),
    ("def f(n):\n    return [i * i for i in range(n) if i % {a} == 0]", "int"),
    ("def f(n):\n    return n * {a} + {b}", "int"),
    ("def f(n):\n    return bin(n).count('1') + {b}", "int"),
)
"""The program shapes, by input kind; `{a}`..`{d}` are drawn per problem."""


class DeductionConfig(TaskSettings):
    """Deduction: programs and inputs drawn from templates, outputs computed in the sandbox."""

    seed: int = 1234
    """Seed of the problem generator (fixed across run seeds)."""
    human_size: int | None = Field(200, ge=1)
    """Problems with the output written (the human data)."""
    pool_size: int | None = Field(400, ge=0)
    """Problems without, that self-training samples on (0: none, for `own-problems`)."""
    test_size: int | None = Field(200, ge=1)
    """Held-out problems."""
    timeout: float = Field(5.0, gt=0)
    """Seconds a program may run on its input (the oracle) or a batch may take."""


def prompt_of(program: str, arg: str) -> str:
    """The problem as the model sees it.

    >>> print(prompt_of("def f(x):\\n    return x", "[1]"))
    Program:
    def f(x):
        return x
    Input: [1]
    Output:
    """
    return f"Program:\n{program}\nInput: {arg}\nOutput:"


def written_parts(text: str) -> tuple[str, str]:
    """(program, input) of a problem as written: a program defining `f`, then `Input: ...`.

    >>> written_parts("def f(x):\\n    return x\\nInput: [1, 2]")
    ('def f(x):\\n    return x', '[1, 2]')
    """
    body = text.strip().removeprefix("Program:").strip()
    program, sep, rest = body.rpartition("\nInput:")
    if not sep:
        raise NotAProblem("no `Input:` line after the program")
    return program.strip("\n"), rest.strip().split("\nOutput:")[0].strip()


def literal(text: str):
    """A Python literal from text, or a NotAProblem naming what it is not."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise NotAProblem(f"not a Python literal: {text[:40]!r}") from None


OUTPUT_PROBE = '''
class Output(Exception):
    """Carries the program's return value (plain data, from the sandbox's proxy) to the verdict."""


def check(candidate):
    raise Output(repr(candidate({arg})))
'''
"""Trusted test code for the sandbox that reports what the program returns on the input:
the tester sees return values only as plain data, and its verdict's reason carries them."""


class DeductionVerifier:
    """Accepts a completion whose value after the last `Output:` (or the whole completion)
    equals the reference value.

    >>> v = DeductionVerifier()
    >>> p = Problem("d", "...", "[3, 2, 1]")
    >>> [s.value for s in v([p, p, p], [" [3,2,1]", " [1, 2, 3]", " three"])]
    [1.0, 0.0, 0.0]
    """

    def describe(self) -> dict:
        return {"kind": "deduction"}

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        out = []
        for p, c in zip(problems, completions, strict=True):
            text = c.rsplit("Output:", 1)[-1].strip().split("\n")[0]
            try:
                got = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                out.append(Score(0.0, f"no literal to read: {text[:40]!r}"))
                continue
            want = ast.literal_eval(p.answer)
            out.append(Score(1.0, "correct", repr(got)) if got == want else Score(0.0, f"{got!r} is not {want!r}", repr(got)))
        return out


class DeductionTask(Task):
    name = "deduction"
    config = DeductionConfig

    def __init__(self, cfg: DeductionConfig | None = None):
        self.cfg = cfg or DeductionConfig()

    @cached_property
    def _sandbox(self):
        from selftrain.verifiers.sandbox import Limits, Sandbox

        return Sandbox(Limits(wall_seconds=self.cfg.timeout, cpu_seconds=max(1, int(self.cfg.timeout))))

    def _draw(self, rng: random.Random) -> tuple[str, str]:
        template, kind = rng.choice(TEMPLATES)
        values = dict(a=rng.randint(1, 4), b=rng.randint(0, 2), c=rng.choice("abc"), d=rng.choice("xyz"))
        if kind == "list":
            arg = repr([rng.randint(0, 9) for _ in range(rng.randint(3, 6))])
        elif kind == "str":
            arg = repr("".join(rng.choice("abcabcde") for _ in range(rng.randint(3, 7))))
        else:
            arg = repr(rng.randint(1, 12))
        return template.format(**values), arg

    def outputs(self, items: list[tuple[str, str]]) -> list[str | Exception]:
        """What each program returns on its input (a literal's repr), run in the sandbox; the
        reason, as a NotAProblem, where it raised, hung or returned no plain value."""
        from selftrain.verifiers.sandbox import CodeJob

        jobs = [CodeJob(program=program, test=OUTPUT_PROBE.replace("{arg}", arg), entry_point="f") for program, arg in items]
        out: list[str | Exception] = []
        for verdict in self._sandbox.map(jobs):
            m = re.search(r"Output: (.*)$", verdict.reason, re.S)
            if m is None:
                out.append(NotAProblem(f"the program did not return a value: {verdict.reason[:80]}"))
                continue
            try:
                text = ast.literal_eval(m.group(1)) if m.group(1).startswith(("'", '"')) else m.group(1)
                ast.literal_eval(text)
                out.append(text if len(text) <= 200 else NotAProblem("the output is longer than 200 characters"))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                out.append(NotAProblem(f"the output is no plain value (or too long to read): {m.group(1)[:40]}"))
        return out

    @cached_property
    def _splits(self) -> dict[str, list[Problem]]:
        rng = random.Random(self.cfg.seed)
        sizes = {"human": self.cfg.human_size or 0, "pool": self.cfg.pool_size or 0, "test": self.cfg.test_size or 0}
        seen: set[tuple[str, str]] = set()
        drawn: dict[str, list[tuple[str, str]]] = {name: [] for name in sizes}
        for name, n in sizes.items():
            tries = 0
            while len(drawn[name]) < n and tries < 100 * (n + 10):
                tries += 1
                item = self._draw(rng)
                if item not in seen:
                    seen.add(item)
                    drawn[name].append(item)
        splits = {}
        for name, items in drawn.items():
            answers = self.outputs(items)
            splits[name] = [Problem(f"{name}-{i}", prompt_of(program, arg), answer,
                                    f" {answer}" if name == "human" else None, program.split("\n")[1].split("(")[0].strip(),
                                    {"program": program, "input": arg})
                            for i, ((program, arg), answer) in enumerate(zip(items, answers)) if isinstance(answer, str)]
        return splits

    def human(self) -> list[Problem]:
        return self._splits["human"]

    def pool(self) -> list[Problem]:
        return self._splits["pool"]

    def test(self) -> list[Problem]:
        return self._splits["test"]

    def verifier(self) -> Verifier:
        return DeductionVerifier()

    def written(self, problem: Problem) -> str:
        """A problem as the proposer writes one: the program, then its input."""
        return f"{problem.meta['program']}\nInput: {problem.meta['input']}"

    def oracle(self, written: str, id: str) -> Problem:
        """A program and an input the model wrote, run in the sandbox: what it returns is the
        answer. `NotAProblem` for a text without both, an input that is no literal, a program
        that does not define `f`, raises, hangs or returns no plain value."""
        program, arg = written_parts(written)
        literal(arg)
        if not re.match(r"def f\(\w+\):", program):
            raise NotAProblem("the program does not start with `def f(x):`")
        answer = self.outputs([(program, arg)])[0]
        if isinstance(answer, Exception):
            raise answer
        return Problem(id, prompt_of(program, arg), answer, None, "own", {"program": program, "input": arg})
