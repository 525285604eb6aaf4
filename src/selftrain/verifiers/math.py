"""Math verifier: read the final answer of a completion, check it against the reference.

Precision first: a wrong answer accepted is a wrong solution trained on as right, so the
verifier says "could not judge" (None, with the reason) rather than "correct" whenever it
cannot compare the whole answer with the whole reference: a reference that is prose, a
parse that keeps only part of either side, a multi-part reference whose parts the answer
does not align with, an equation against a non-equation it cannot reduce.

Extraction, in this order: the last `\\boxed{...}` (or `\\fbox`, `\\framebox`; a `\\textbf`
or `\\text` inside is unwrapped), the last "the answer is ..." (to the end of its sentence;
abbreviations such as "Mrs." do not end one), the last `#### ...` (GSM8K's marker), the last
number. Both sides are then normalised alike: scientific notation (`4.5e33`,
`4.5 \\times 10^{33}`) to one form, units and unit words dropped (`UNITS`, configurable;
"9 (apples)" reads 9), `\\$`. Equivalence: two plain numbers (integers, decimals, fractions,
scientific notation, with thousands separators) are compared exactly in Python; anything
else goes to Hugging Face's math-verify, whole-parse checked, with equations compared as
equations (the same relation up to a non-zero factor), matrices entry by entry, and a
numeric check at random points that rejects clearly different expressions before any
symbolic work (`_math_worker.compare`).

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
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?(?:/\d+)?|-?\$?\.\d+")
ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Sr", "Jr", "vs", "etc", "e.g", "i.e", "No", "approx", "a.m", "p.m")
# a sentence ends at a period followed by a space or the end (not a decimal point), unless an abbreviation precedes it
_SENTENCE_END = re.compile(r"(?<![A-Z])\.(?=\s|$)")

UNITS = (
    "apples", "dollars", "dollar", "cents", "cent", "degrees", "degree", "units", "unit", "square units", "sq units",
    "meters", "meter", "metres", "m", "cm", "mm", "km", "inches", "inch", "in", "feet", "foot", "ft", "yards", "yd",
    "miles", "mi", "mph", "kg", "g", "grams", "gram", "pounds", "lbs", "lb", "ounces", "oz", "liters", "litres", "l",
    "ml", "gallons", "seconds", "second", "sec", "s", "minutes", "minute", "min", "hours", "hour", "hr", "hrs", "days",
    "day", "weeks", "week", "months", "month", "years", "year", "people", "students", "points", "marbles", "cookies",
    "pages", "books", "ways", "times",
)
"""Words (and symbols) dropped after a number as its unit, on both sides; a task may pass its own."""


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
    boxes = [(completion.rfind(c + "{"), c) for c in ("\\boxed", "\\fbox", "\\framebox")]
    for _, command in sorted(boxes, reverse=True):
        inner = _last_braced(completion, command)
        if inner is not None and inner.strip():
            return _unwrap(inner.strip()), "boxed"
    found = list(_ANSWER_IS.finditer(completion))
    if found:
        tail = completion[found[-1].end() :].split("\n")[0].strip()
        tail = first_sentence(tail).strip().strip("$").strip()
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


def _unwrap(text: str) -> str:
    r"""`\\textbf{...}`, `\\text{...}`, `\\mathbf{...}` around the whole answer removed.

    >>> _unwrap("\\textbf{(B)}"), _unwrap("\\text{ 12 }")
    ('(B)', '12')
    """
    m = re.fullmatch(r"\\(?:textbf|text|mathbf|mathrm|mbox)\{(.*)\}", text.strip(), re.S)
    return m.group(1).strip() if m and "{" not in m.group(1) else text


def first_sentence(text: str) -> str:
    """Text up to the first full stop that ends a sentence (not "Mrs." or "3.5").

    >>> first_sentence("Mrs. Smith gets 3.5 cups. Then more.")
    'Mrs. Smith gets 3.5 cups'
    """
    start = 0
    for m in _SENTENCE_END.finditer(text):
        word = re.search(r"([A-Za-z.]+)$", text[: m.start()])
        if word and word.group(1).rstrip(".") in ABBREVIATIONS:
            continue
        return text[: m.start()]
    return text[start:]


_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*[eE]\s*([+-]?\d+)(?![\w.])")
_TIMES_TEN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?")


def normalize(text: str, units: tuple[str, ...] = UNITS) -> str:
    r"""One written form for both sides: scientific notation as `a\\times10^{b}`, units and
    unit words after a number dropped, dollar signs and degree marks dropped.

    >>> normalize("4.5e33"), normalize("4.5 \\times 10^{33}"), normalize("9 (apples)"), normalize("15\\mbox{ cm}^2")
    ('4.5\\times10^{33}', '4.5\\times10^{33}', '9', '15')
    >>> normalize("\\$1,200 dollars"), normalize("90^\\circ"), normalize("x^2 + 3")
    ('1,200', '90', 'x^2 + 3')
    """
    t = _unwrap(text.strip().replace("\\$", "").replace("$", "").replace("\\!", ""))
    t = re.sub(r"\^\s*\{?\\circ\}?", "", t).replace("°", "")
    t = _E_NOTATION.sub(r"\1\\times10^{\2}", t)
    t = _TIMES_TEN.sub(r"\1\\times10^{\2}", t)
    words = "|".join(sorted((re.escape(u) for u in units), key=len, reverse=True))
    unit = rf"(?:\\(?:text|mbox|mathrm)\{{\s*(?:{words})\s*\}}|\(\s*(?:{words})\s*\)|(?:{words}))(?:\s*\^\s*\{{?\d\}}?)?"
    t = re.sub(rf"(?<=[\d}}])\s*{unit}\s*$", "", t)
    return t.strip().rstrip(".").strip()


_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")


def is_prose(text: str) -> bool:
    r"""Two or more words of two or more letters outside LaTeX commands and `\\text{}`: a
    sentence, not an answer that can be compared as a whole.

    >>> is_prose("The ball lands after 10 seconds"), is_prose("\\text{Evelyn}"), is_prose("\\sin x + 2")
    (True, False, False)
    >>> is_prose("2 and 5"), is_prose("x = 2 or x = 3")
    (False, False)
    """
    bare = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{[^{}]*\}|\\(?:begin|end)\{[a-z*]+\}", " ", text)
    bare = re.sub(r"\\[a-zA-Z]+", " ", bare)
    words = [w for w in _WORD.findall(bare) if w.lower() not in ("and", "or")]
    return len(words) >= 2


def parts(text: str) -> list[str]:
    r"""The parts of a multi-part answer: lines, or `;`-separated (matrices and cases kept whole).

    >>> parts("x = 2\ny = 3"), parts("(a) 4; (b) 7"), parts("\\begin{pmatrix}1\\\\2\\end{pmatrix}")
    (['x = 2', 'y = 3'], ['4', '7'], ['\\begin{pmatrix}1\\\\2\\end{pmatrix}'])
    """
    if "\\begin" in text:
        return [text.strip()]
    pieces = [p.strip() for p in re.split(r"\n|;", text) if p.strip()]
    return [re.sub(r"^\(?[a-z]\)\s*|^\(?[ivx]+\)\s+", "", p).strip() for p in pieces] or [text.strip()]


def plain_number(text: str) -> Fraction | None:
    r"""An exact value for a plain number, else None.

    >>> plain_number("$1,000."), plain_number("-0.50"), plain_number("3/4"), plain_number("x+1")
    (Fraction(1000, 1), Fraction(-1, 2), Fraction(3, 4), None)
    >>> plain_number("4.5e3"), plain_number("2.5\\times10^{-2}"), plain_number("-\\dfrac{3}{4}")
    (Fraction(4500, 1), Fraction(1, 40), Fraction(-3, 4))
    """
    t = text.strip().replace("\\$", "").replace("$", "").replace("\\!", "").replace(" ", "")
    t = t.rstrip(".")
    frac = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", t)
    if frac and int(frac.group(3)):
        return Fraction(int(frac.group(2)), int(frac.group(3))) * (-1 if frac.group(1) else 1)
    sci = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?:[eE]|\\times10\^\{?)([+-]?\d+)\}?", t)
    if sci:
        return Fraction(sci.group(1)) * Fraction(10) ** int(sci.group(2))
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


VERSION = 1
"""The version of the verifier's rules: raised when a change alters verdicts, so that runs
scored by the old rules score again."""


class MathVerifier:
    """Accepts a completion whose final answer is equivalent to the problem's reference;
    None ("could not judge", with the reason) where the two cannot be compared whole.

    >>> v = MathVerifier()
    >>> p = Problem(id="1", prompt="", answer="72")
    >>> [(s.value, s.reason) for s in v([p, p], ["... #### 72", "The answer is 71."])]
    [(1.0, 'correct (72)'), (0.0, 'wrong answer 71, expected 72')]
    """

    def __init__(self, workers: int = 2, timeout: float = 5.0, units: tuple[str, ...] = UNITS):
        self.pool = MathVerifyPool(workers, timeout)
        self.units = tuple(units)
        self._cache: dict[tuple[str, str], tuple[bool | None, str]] = {}

    def describe(self) -> dict:
        """Its settings and the version of its rules, for a stage's fingerprint."""
        return {"kind": "math", "version": VERSION, "timeout": self.pool.timeout, "units": list(self.units)}

    def close(self) -> None:
        self.pool.close()

    def _plan(self, reference: str, answer: str) -> list[tuple[str, str]] | tuple[bool | None, str]:
        """A verdict at once, or the (reference part, answer part) pairs still to compare."""
        if is_prose(reference):
            return None, "the reference is prose, not an answer to compare whole"
        ref, ans = normalize(reference, self.units), normalize(answer, self.units)
        ref_parts, ans_parts = parts(ref), parts(ans)
        if len(ref_parts) == 1:
            ans_parts = [ans.replace("\n", " ")]
        elif len(ans_parts) != len(ref_parts):
            return None, f"the reference has {len(ref_parts)} parts, the answer {len(ans_parts)}"
        return list(zip(ref_parts, ans_parts))

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        answers = [extract_answer(c) for c in completions]
        plans: dict[tuple[str, str], list[tuple[str, str]] | tuple[bool | None, str]] = {}
        for problem, (answer, _) in zip(problems, answers):
            key = (problem.answer, answer)
            if answer is not None and key not in self._cache and key not in plans:
                plans[key] = self._plan(*key)
        numbers: dict[tuple[str, str], tuple[bool | None, str]] = {}
        slow: list[tuple[str, str]] = []
        for plan in plans.values():
            for pair in plan if isinstance(plan, list) else []:
                gold_n, answer_n = plain_number(pair[0]), plain_number(pair[1])
                if gold_n is not None and answer_n is not None:
                    numbers[pair] = (gold_n == answer_n, "numbers")
                elif pair not in numbers and pair not in slow:
                    slow.append(pair)
        numbers.update(zip(slow, self.pool.check(slow)))
        for key, plan in plans.items():
            self._cache[key] = plan if isinstance(plan, tuple) else _combine([numbers[pair] for pair in plan])
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


def _combine(verdicts: list[tuple[bool | None, str]]) -> tuple[bool | None, str]:
    """Parts together: wrong if any part is wrong, else unjudged if any is, else right."""
    for ok, why in verdicts:
        if ok is False:
            return ok, why
    for ok, why in verdicts:
        if ok is None:
            return ok, why
    return True, verdicts[0][1] if len(verdicts) == 1 else f"{len(verdicts)} parts"
