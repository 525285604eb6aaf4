"""What the Self-Rewarding miniature needs of the arithmetic task: a judge that checks an
answer by the inverse operation (`CheckJudge`, its prompt `CheckTemplate`, the additive
rubric), its exact judgements (judge training rows, the grader control), and the test of a
problem the model wrote itself.

For `0347+0085=` answered 432 the check is `0432-0085=`, solved as any problem is solved;
the rubric scores how far the check's result agrees with 347. Checking is then no harder
than solving, the judge never sees the working it judges, and a wrong answer passes only if
the check errs into exactly the right number.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selftrain.records import Pair, Problem, Sample, SamplingParams, Score
from selftrain.tasks.arithmetic import MARKER, aligned_solution, apply, final_answer, operands, operation
from selftrain.verifiers.llm_judge import JudgeTemplate, LLMJudge


def shown_answer(completion: str, width: int) -> str:
    """A response as the miniature's judge sees it: its final answer alone, zero-padded to
    the columns (`0432`), or `?` when it has none that fits them.

    >>> shown_answer("7+5+0=12 4+8+1=13 3+0+1=04 0+0+0=00 A:432", 4), shown_answer("A:12345", 4)
    ('0432', '?')
    """
    answer = final_answer(completion)
    return answer.zfill(width) if answer is not None and len(answer.lstrip("0") or "0") <= width else "?"


def check_problem(prompt: str, completion: str, width: int) -> str:
    """The check a response's final answer asks for: for `a+b=` answered s, `s-b=`; for
    `a-b=` answered d, `d+b=` (zero-padded to the columns); `?` when the response has no
    answer that fits them.

    >>> check_problem("0347+0085=", "7+5+0=12 4+8+1=13 3+0+1=04 0+0+0=00 A:432", 4)
    '0432-0085='
    >>> check_problem("0432-0085=", "A:347", 4), check_problem("0432-0085=", "no answer", 4)
    ('0347+0085=', '?')
    """
    shown, parts = shown_answer(completion, width), operands(prompt)
    if shown == "?" or parts is None:
        return "?"
    _, op, b = parts
    return f"{shown}{'-' if op == '+' else '+'}{b:0{width}d}="


def check_solution(shown: str, b: int, op: str, width: int) -> tuple[str, int]:
    """The check for an answer `shown` to `a op b` (`check_problem`) and its exact worked
    solution: the solver's columns, and the result kept to the columns (a check of a wrong
    answer can borrow or carry past them).

    >>> check_solution("0432", 85, "+", 4)
    ('2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347', 347)
    >>> check_solution("0040", 85, "+", 4)
    ('0-5-0=15 4-8-1=15 0-0-1=19 0-0-1=19 A:9955', 9955)
    """
    inverse = "-" if op == "+" else "+"
    result = apply(int(shown), b, inverse) % 10**width
    return f"{aligned_solution(int(shown), b, width, inverse).rsplit(f' {MARKER}', 1)[0]} {MARKER}{result}", result


def rubric(result: str | None, a: int, width: int) -> int:
    """The miniature's additive rubric, applied to a check's final answer `result` (digits,
    or None when it has none): +1 a well-formed answer to judge (always, here: the judge is
    not asked about the rest), +1 the check's units digit matches `a`'s, +1 its two lowest
    digits match, +2 all its digits match. A right answer whose check is done right scores
    5; a wrong one at most 3, unless its check errs exactly into `a`; no result, 1.

    >>> rubric("347", 347, 4), rubric("357", 347, 4), rubric("0347", 347, 4), rubric(None, 347, 4)
    (5, 2, 5, 1)
    """
    got = "?" * width if result is None else result.zfill(width)[-width:]
    want = f"{a:0{width}d}"
    return 1 + (got[-1] == want[-1]) + (got[-2:] == want[-2:]) + 2 * (got == want)


@dataclass(frozen=True)
class WellFormed:
    """A written prompt the task could hold: `dddd+dddd=` or `dddd-dddd=` over its columns, a
    subtraction's minuend at least its subtrahend, a sum within the columns.

    >>> check = WellFormed(4, ("+", "-"))
    >>> check("0347+0085="), check("0085-0347="), check("347+85="), check("9999+0001=")
    (True, False, False, False)
    """

    width: int
    operations: tuple[str, ...]

    def __call__(self, text: str) -> bool:
        parts = operands(text)
        if parts is None or len(text) != 2 * self.width + 2 or text[self.width] not in self.operations:
            return False
        a, op, b = parts
        return a >= b if op == "-" else a + b < 10**self.width

    def describe(self) -> dict[str, Any]:
        return {"kind": "arithmetic-prompt", "width": self.width, "operations": list(self.operations)}


def problem_from_prompt(prompt: str, pid: str) -> Problem:
    """The problem a well-formed prompt states, with its answer."""
    a, op, b = operands(prompt)
    return Problem(id=pid, prompt=prompt, answer=str(apply(a, b, op)), bucket=str(max(len(str(a)), len(str(b)))),
                   meta={"a": a, "b": b, **({"op": op} if op != "+" else {})})


@dataclass(frozen=True)
class CheckTemplate(JudgeTemplate):
    """The miniature's judge prompt: the check a response's final answer calls for
    (`check_problem`); the judge is `CheckJudge`."""

    width: int = 4

    def format(self, prompt: str, response: str) -> str:
        return check_problem(prompt, response, self.width)

    def judge(self, sampler, samples=3, params=SamplingParams(), seed=0, finish=False) -> CheckJudge:
        return CheckJudge(sampler, self, samples, params, seed)


def judge_template(width: int) -> CheckTemplate:
    return CheckTemplate(f"arithmetic-check-{width}", "{response}", 0.0, 5.0, width)


class CheckJudge(LLMJudge):
    """The miniature's judge: the model solves the check a response's final answer calls for
    (for `a+b=` answered s, `s-b=`; for `a-b=` answered d, `d+b=`), as it solves any
    problem, `samples` times with the judge's sampling settings; each check is scored on the
    additive rubric by how far its answer agrees with `a` (`rubric`). It
    never sees the response's working. A response without an answer that fits the columns
    scores 0 unasked. A judgement's text is the check, the model's working and the score:
    `0432-0085=2-5-0=17 3-8-1=14 4-0-1=03 0-0-0=00 A:347 | Score: 5`."""

    template: CheckTemplate

    def judgements(self, problems: Sequence[Problem], responses: Sequence[str]) -> list[list[str]]:
        width = self.template.width
        asks = [(p, self.template.format(p.prompt, r)) for p, r in zip(problems, responses) for _ in range(self.samples)]
        asked = [i for i, (_, check) in enumerate(asks) if check != "?"]
        working = self.sampler.generate([asks[i][1] for i in asked], self.params, self.seed)
        outputs = ["no answer Score: 0"] * len(asks)
        for i, said in zip(asked, working):
            p, check = asks[i]
            outputs[i] = f"{check}{said} | Score: {rubric(final_answer(said), operands(p.prompt)[0], width)}"
        return [outputs[i * self.samples: (i + 1) * self.samples] for i in range(len(responses))]


def exact_judgement(p: Problem, completion: str, width: int) -> tuple[int, str]:
    """What a judge that never errs finds for `completion`: its score, and its check's
    worked solution ("" when the response has no answer to check)."""
    shown = shown_answer(completion, width)
    if shown == "?":
        return 0, ""
    working, result = check_solution(shown, p.meta["b"], operation(p), width)
    return rubric(str(result), p.meta["a"], width), working


def eft_rows(problems: list[Problem], samples: list[Sample], width: int, n: int, seed: int) -> list[dict[str, str]]:
    """Judge training examples (EFT) from a model's own answers: `n` of them, half right and
    half wrong (as far as the samples allow): the check each answer calls for, with its
    exact worked solution. For a right answer that is the inverse problem solved; for a
    wrong one, a check that fails (sometimes borrowing or carrying past the columns)."""
    by_id, template = {p.id: p for p in problems}, judge_template(width)
    right, wrong = [], []
    for s in samples:
        p = by_id[s.problem_id]
        score, working = exact_judgement(p, s.completion, width)
        if score:  # an answer that fits the columns (the judge is not asked about the rest)
            (right if score == 5 else wrong).append({"prompt": template.format(p.prompt, s.completion), "completion": working})
    rng = random.Random(seed)
    rng.shuffle(right)
    rng.shuffle(wrong)
    wrong = wrong[: n - min(n // 2, len(right))]
    rows = right[: n - len(wrong)] + wrong
    rng.shuffle(rows)
    return rows


class GraderAsJudge:
    """The control `miniature.pair_judge: grader`: the exact judgement's score (a perfect judge)."""

    def __init__(self, width: int):
        self.width = width

    def describe(self) -> dict[str, Any]:
        return {"kind": "exact-check", "width": self.width}

    def __call__(self, problems, completions) -> list[Score]:
        return [Score(float(exact_judgement(p, c, self.width)[0]), "grader: exact check") for p, c in zip(problems, completions)]


def truly_better(pairs: list[Pair], problems: list[Problem]) -> dict[str, Any]:
    """How many self-made pairs are right against wrong, by the task's grader."""
    by_id = {p.id: p for p in problems}

    def right(pid: str, text: str) -> bool:
        return final_answer(text) == by_id[pid].answer

    n = max(len(pairs), 1)
    return {"prompts": len(problems),
            "chosen_truly_right": round(sum(right(p.problem_id, p.chosen) for p in pairs) / n, 5),
            "rejected_truly_wrong": round(sum(not right(p.problem_id, p.rejected) for p in pairs) / n, 5)}
