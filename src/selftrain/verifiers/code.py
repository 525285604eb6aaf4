"""Code verifier: a completion passes when its program passes the problem's tests in the sandbox."""

from __future__ import annotations

import re
from collections.abc import Sequence

from selftrain.records import Problem, Score
from selftrain.verifiers.base import VerifierKind
from selftrain.verifiers.sandbox import CodeJob, Limits, Sandbox

STOP_SEQUENCES = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert ")
"""Where a plain (not fenced) continuation of a function body ends, as in the Codex paper's
HumanEval sampling: the first top-level statement after the body."""

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def program_for(problem: Problem, completion: str) -> str:
    """The program to test: the prompt (signature and docstring) plus the completion.

    A completion with a fenced code block (a chat model's answer) contributes that block,
    which may redefine the function whole; a plain completion continues the prompt's
    function body and is cut at the first top-level statement after it.

    >>> p = Problem(id="t", prompt="def f(x):\\n", answer="")
    >>> program_for(p, "    return x\\nprint(f(1))\\n")
    'def f(x):\\n    return x'
    >>> program_for(p, "Sure:\\n```python\\ndef f(x):\\n    return 2 * x\\n```")
    'def f(x):\\n\\ndef f(x):\\n    return 2 * x\\n'
    """
    fenced = _FENCE.search(completion)
    if fenced:
        return problem.prompt + "\n" + fenced.group(1)
    cut = min((i for i in (completion.find(s) for s in STOP_SEQUENCES) if i >= 0), default=len(completion))
    return problem.prompt + completion[:cut]


class CodeVerifier:
    """Runs each program against its problem's tests (`meta["test"]`, `meta["entry_point"]`)
    in a `Sandbox`, many at once. The problem's prompt is given to the tester as trusted
    context, so tests can call helper functions the prompt defines.

    A verdict the sandbox could not reach (e.g. it could not start) is still a rejection
    with its reason: a program is never accepted without a passing test run.
    """

    def __init__(self, sandbox: Sandbox | None = None, workers: int | None = None, limits: Limits | None = None):
        self.sandbox = sandbox or Sandbox(limits)
        self.workers = workers

    def describe(self) -> dict:
        from dataclasses import asdict

        return {"kind": "code", "limits": asdict(self.sandbox.limits)}

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        jobs = []
        for problem, completion in zip(problems, completions):
            if "test" not in problem.meta or "entry_point" not in problem.meta:
                raise ValueError(f"problem {problem.id} has no tests (meta needs 'test' and 'entry_point')")
            jobs.append(
                CodeJob(
                    program=program_for(problem, completion),
                    test=problem.meta["test"],
                    entry_point=problem.meta["entry_point"],
                    context=problem.meta.get("context", problem.prompt),
                )
            )
        verdicts = self.sandbox.map(jobs, self.workers)
        return [Score(float(v.passed), v.reason) for v in verdicts]


def _make(cfg) -> CodeVerifier:
    return CodeVerifier(limits=Limits(wall_seconds=cfg.timeout, cpu_seconds=max(1, int(cfg.timeout))))


KIND = VerifierKind("code", _make, frozenset({"tests"}))
"""`verifier: code`: the program passes the problem's tests in the sandbox (`timeout` seconds)."""
