"""Math verifier: read the final answer of a completion, check it against the reference.

Extraction, in this order: the last `\\boxed{...}` (or `\\fbox{...}`), the last "the answer
is ...", the last `#### ...` (GSM8K's marker), the last number. Equivalence: two plain
numbers (integers, decimals, fractions, with thousands separators, `$` or a trailing
period) are compared exactly in Python; anything else goes to Hugging Face's math-verify
(`parse` + `verify`: LaTeX, sympy equivalence, sets, intervals, equations, units).

math-verify's own timeouts use `signal.alarm`, which works only on a process's main thread.
Here every math-verify call runs in a small pool of worker processes instead, each call with
a deadline enforced from outside: a worker that overruns is killed and replaced, and the
answer is scored None ("could not judge") with the reason. So the verifier can be called
from any thread or process. Verdicts are cached by (reference, answer): K samples of one
problem often repeat an answer.
"""

from __future__ import annotations

import atexit
import pickle
import re
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from fractions import Fraction

from selftrain.records import Problem, Score

_ANSWER_IS = re.compile(r"answer is[:\s]*", re.I)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\$?\.\d+")


def _last_braced(text: str, command: str) -> str | None:
    """The contents of the last `command{...}` in `text`, braces balanced."""
    start = text.rfind(command + "{")
    while start >= 0:
        i, depth = start + len(command) + 1, 1
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i:j]
        start = text.rfind(command + "{", 0, start)  # unbalanced: try the one before
    return None


def extract_answer(completion: str) -> tuple[str | None, str]:
    """(final answer, how it was found), or (None, reason).

    >>> extract_answer("so x = 2 and \\\\boxed{\\\\frac{1}{2}}.")
    ('\\\\frac{1}{2}', 'boxed')
    >>> extract_answer("Adding up, the answer is $1,250.")
    ('1,250', 'the answer is')
    >>> extract_answer("48/2 = 24\\n#### 24")
    ('24', '####')
    >>> extract_answer("She has 3 apples, then 5.")
    ('5', 'last number')
    >>> extract_answer("no idea")
    (None, 'no final answer found')
    """
    for command in ("\\boxed", "\\fbox"):
        inner = _last_braced(completion, command)
        if inner is not None and inner.strip():
            return inner.strip(), "boxed"
    found = list(_ANSWER_IS.finditer(completion))
    if found:
        tail = completion[found[-1].end() :].split("\n")[0].strip()
        tail = re.split(r"\.(?:\s|$)", tail)[0].strip().strip("$").strip()
        if tail:
            return tail, "the answer is"
    if "####" in completion:
        tail = completion.rsplit("####", 1)[1].strip().split("\n")[0].strip()
        if tail:
            return tail, "####"
    numbers = _NUMBER.findall(completion)
    if numbers:
        return numbers[-1], "last number"
    return None, "no final answer found"


def plain_number(text: str) -> Fraction | None:
    """An exact value for a plain number, else None.

    >>> plain_number("$1,000."), plain_number("-0.50"), plain_number("3/4"), plain_number("x+1")
    (Fraction(1000, 1), Fraction(-1, 2), Fraction(3, 4), None)
    """
    t = text.strip().replace("\\$", "").replace("$", "").replace("\\!", "").replace(" ", "")
    t = t.rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    if not re.fullmatch(r"-?(\d+(\.\d+)?|\.\d+)(/\d+)?", t):
        return None
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


# ---------------------------------------------------------------- math-verify in worker processes


class _Worker:
    """One `python -m selftrain.verifiers._math_worker` process."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "selftrain.verifiers._math_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        self.fd = self.proc.stdout.fileno()

    def fileno(self) -> int:
        return self.fd

    def send(self, pair: tuple[str, str]) -> None:
        data = pickle.dumps(pair)
        self.proc.stdin.write(len(data).to_bytes(4, "big") + data)

    def receive(self, timeout: float | None = None):
        """The next reply; EOFError if the worker died, TimeoutError if none came in time."""
        if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
            raise TimeoutError
        head = self.proc.stdout.read(4)
        if not head or len(head) < 4:
            raise EOFError
        n = int.from_bytes(head, "big")
        body = self.proc.stdout.read(n)
        if len(body) < n:
            raise EOFError
        return pickle.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class MathVerifyPool:
    """math-verify calls in `workers` processes, each call with a deadline of `timeout` s."""

    def __init__(self, workers: int = 2, timeout: float = 5.0):
        self.size, self.timeout = workers, timeout
        self._workers: list[_Worker] = []
        atexit.register(self.close)

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []

    def _spawn(self) -> _Worker:
        w = _Worker()
        try:
            if w.receive(timeout=120) == "ready":  # importing sympy takes a moment
                return w
        except (EOFError, TimeoutError):
            pass
        w.stop()
        raise RuntimeError("the math-verify worker did not start (is math-verify installed?)")

    def check(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bool | None, str]]:
        if not pairs:
            return []
        while len(self._workers) < min(self.size, len(pairs)):
            self._workers.append(self._spawn())
        out: list[tuple[bool | None, str] | None] = [None] * len(pairs)
        todo = deque(enumerate(pairs))
        idle = list(self._workers)
        busy: dict[_Worker, tuple[int, float]] = {}
        while todo or busy:
            while todo and idle:
                w = idle.pop()
                i, pair = todo.popleft()
                w.send(pair)
                busy[w] = (i, time.monotonic() + self.timeout)
            soonest = min(deadline for _, deadline in busy.values())
            ready = select.select(list(busy), [], [], max(0.0, soonest - time.monotonic()))[0]
            for w in list(busy):
                i, deadline = busy[w]
                if w in ready:
                    try:
                        out[i] = w.receive()
                        del busy[w]
                        idle.append(w)
                        continue
                    except EOFError:
                        out[i] = (None, "math-verify worker died")
                elif time.monotonic() >= deadline:
                    out[i] = (None, f"timed out after {self.timeout:g} s")
                else:
                    continue
                del busy[w]  # dead or overdue: replace it
                w.stop()
                fresh = self._spawn()
                self._workers[self._workers.index(w)] = fresh
                idle.append(fresh)
        return out  # type: ignore[return-value]


class MathVerifier:
    """Accepts a completion whose final answer is equivalent to the problem's reference.

    >>> v = MathVerifier()
    >>> p = Problem(id="1", prompt="", answer="72")
    >>> [(s.value, s.reason) for s in v([p, p], ["... #### 72", "The answer is 71."])]
    [(1.0, 'correct (72)'), (0.0, 'wrong answer 71, expected 72')]
    """

    def __init__(self, workers: int = 2, timeout: float = 5.0):
        self.pool = MathVerifyPool(workers, timeout)
        self._cache: dict[tuple[str, str], tuple[bool | None, str]] = {}

    def close(self) -> None:
        self.pool.close()

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        answers = [extract_answer(c) for c in completions]
        slow: list[tuple[str, str]] = []
        for problem, (answer, _) in zip(problems, answers):
            key = (problem.answer, answer)
            if answer is None or key in self._cache:
                continue
            gold_n, answer_n = plain_number(problem.answer), plain_number(answer)
            if gold_n is not None and answer_n is not None:
                self._cache[key] = (gold_n == answer_n, "numbers")
            elif key not in slow:
                slow.append(key)
        for key, verdict in zip(slow, self.pool.check(slow)):
            self._cache[key] = verdict
        out = []
        for problem, (answer, how) in zip(problems, answers):
            if answer is None:
                out.append(Score(0.0, how))
                continue
            ok, why = self._cache[(problem.answer, answer)]
            if ok is None:
                out.append(Score(None, why, answer))
            elif ok:
                out.append(Score(1.0, f"correct ({answer})", answer))
            else:
                detail = f" ({why})" if why.startswith("could not") else ""
                out.append(Score(0.0, f"wrong answer {answer}, expected {problem.answer}{detail}", answer))
        return out
