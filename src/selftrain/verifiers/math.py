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
"9 (apples)" reads 9), `\\$`, math written as plain text in LaTeX (`plain_math`:
`sqrt(2)/2`). A reference that is words is compared as words, or, where the words name a
set ("all real numbers", "no solution": `PHRASES`), as that set. Labels are a mapping
(`_mislabelled`: a label repeated in place of another never matches). Equivalence: two
plain numbers (integers, decimals, fractions, scientific notation, with thousands
separators) are compared exactly in Python; anything else goes to Hugging Face's
math-verify, whole-parse checked, with subscripted names read as symbols, equations
compared as equations (the same relation up to a non-zero factor), intervals and sets
endpoint by endpoint, matrices entry by entry, and a numeric check at random points over
every free symbol that rejects clearly different expressions before any symbolic work
(`_math_worker.compare`).

math-verify's own timeouts use `signal.alarm`, which works only on a process's main thread.
Here every math-verify call runs in a small pool of worker processes instead, each call with
a deadline enforced from outside: a worker that overruns is killed and replaced, and the
answer is scored None ("could not judge") with the reason. So the verifier can be called
from any thread or process. Verdicts are cached by (reference, answer): K samples of one
problem often repeat an answer.
"""

from __future__ import annotations

import atexit
import re
import select
import time
from collections import Counter, deque
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from selftrain.plugins import Worker
from selftrain.records import Problem, Score
from selftrain.verifiers.base import VerifierKind

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


_SPACING = re.compile(r"(?<!\\)(?:\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|\\q?quad|\\[!,;:]|\\ )|~")


def canonical(text: str) -> str:
    r"""One spelling of an answer, for identity: no `$`, no spacing (`\,` `\!` `~` `\quad`, blanks),
    no `\left` / `\right` / `\displaystyle`, `\dfrac` and `\tfrac` as `\frac`, no final period;
    words (an answer of letters and punctuation alone) in lower case, so `Ax+a` is not `ax+A`.

    >>> canonical("$\\left( \\dfrac{1}{2}, 3 \\right)$.") == canonical("(\\frac{1}{2},3)")
    True
    >>> canonical("No Solution."), canonical("12 \\mathrm{~min}")
    ('nosolution', '12\\mathrm{min}')
    """
    t = text.strip().replace("$", "")
    t = _SPACING.sub(" ", t)
    t = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", t)
    t = re.sub(r"\s+", "", t).rstrip(".")
    return t.lower() if re.fullmatch(r"[A-Za-z.,;:'()-]*", t) else t


_WORDS = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*(?:[\s,;:]+[A-Za-z]+(?:['-][A-Za-z]+)*)*")


def words(text: str) -> list[str] | None:
    r"""The words of an answer that is words (`No solution`, `\text{All real numbers}`): lower
    case, punctuation dropped; None for an answer with digits or math in it.

    >>> words("\\text{All real numbers}"), words("MR = MC"), words("x = 2")
    (['all', 'real', 'numbers'], None, None)
    >>> words("-(\\text{No solution})")
    """
    bare = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text).replace("$", "").strip().rstrip(".")
    if not _WORDS.fullmatch(bare) or not re.search(r"[A-Za-z]{2,}", bare):
        return None
    found = re.findall(r"[a-z]+", bare.lower())
    return found if len(found) >= 2 else None


_FUNCTIONS = ("arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sin", "cos", "tan", "cot", "sec", "csc", "ln",
              "log", "exp")
_GREEK_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "sigma", "omega", "phi", "rho", "tau")
_PLAIN_FUNCTION = re.compile(rf"(?<![A-Za-z\\])({'|'.join(_FUNCTIONS)})(?=\s*[(|^]|\s+[\w(])")
_PLAIN_CONSTANT = re.compile(rf"(?<![A-Za-z\\])(pi|infinity|inf|{'|'.join(_GREEK_NAMES)})(?![A-Za-z])")


def _braced(text: str, start: int) -> int | None:
    """The index just past the bracket that closes the one opening at `start`, or None."""
    depth = 0
    for j in range(start, len(text)):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return None


def plain_math(text: str) -> str:
    r"""Math written as plain text (no LaTeX command in it) in LaTeX: `sqrt(2)` as `\sqrt{2}`,
    `pi`, `infinity` and Greek names as commands, `ln(2)` as `\ln(2)`, `<=` `>=` `!=`, a union
    `U` between intervals as `\cup`, `x in [a, b]` as `x \in [a, b]`, a mixed number `1 4/5` as
    `1\frac{4}{5}`, rows `[[1, 0], [0, 1]]` as a matrix, braces `{1, 2}` as a set. Text with a
    LaTeX command is returned as it is.

    >>> plain_math("sqrt(2)/2"), plain_math("(3, pi/2)"), plain_math("(-infinity, 3] U (5, inf)")
    ('\\sqrt{2}/2', '(3, \\pi/2)', '(-\\infty, 3] \\cup (5, \\infty)')
    >>> plain_math("2pi + ln(2)"), plain_math("x <= 3"), plain_math("spin"), plain_math("\\sqrt{2}")
    ('2\\pi + \\ln(2)', 'x \\le 3', 'spin', '\\sqrt{2}')
    >>> plain_math("1 +/- sqrt(19)"), plain_math("x in [-2,7]"), plain_math("1 4/5")
    ('1 \\pm \\sqrt{19}', 'x \\in [-2,7]', '1\\frac{4}{5}')
    >>> plain_math("[[1, 0], [0, 1]]"), plain_math("{-1} U [0,7)"), plain_math("x^{2}")
    ('\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}', '\\{-1\\} \\cup [0,7)', 'x^{2}')
    >>> plain_math("14{,}916"), plain_math("{1, 2} U {3}"), plain_math("10^((1+sqrt(5))/2)")
    ('14{,}916', '\\{1, 2\\} \\cup \\{3\\}', '10^{(1+\\sqrt{5})/2}')
    """
    if "\\" in text:
        return text
    mixed = re.fullmatch(r"\s*(-?\d+)\s+(\d+)/(\d+)\s*", text)
    if mixed:
        return f"{mixed.group(1)}\\frac{{{mixed.group(2)}}}{{{mixed.group(3)}}}"
    rows = re.fullmatch(r"\s*\[\s*(\[.*\])\s*\]\s*", text, re.S)
    if rows:  # [[1, 2], [3, 4]]: a matrix by rows
        lines = re.split(r"(?<=\])\s*,\s*(?=\[)", rows.group(1))
        if all(line.strip().startswith("[") and line.strip().endswith("]") for line in lines):
            cells = [top_level(line.strip()[1:-1], re.compile(",")) for line in lines]
            body = " \\\\ ".join(" & ".join(plain_math(c.strip()) for c in row) for row in cells)
            return f"\\begin{{pmatrix}} {body} \\end{{pmatrix}}"
    if not re.search(r"[a-z]{2}|[<>!]=|\bU\b|\+/-|\{|\^\s*\(", text):
        return text
    t = re.sub(r"(?<![^\s(,=])\{([^{}]*)\}", r"\\{\1\\}", text)  # braces in plain text make a set
    while (m := re.search(r"(?<![A-Za-z])sqrt\s*\(", t)) and (end := _braced(t, m.end() - 1)):
        t = t[: m.start()] + "\\sqrt{" + t[m.end() : end - 1] + "}" + t[end:]
    t = re.sub(r"(?<![A-Za-z])sqrt\s*(\d+|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", t)
    while (m := re.search(r"\^\s*\(", t)) and (end := _braced(t, m.end() - 1)):  # 10^((1+x)/2): 10^{(1+x)/2}
        t = t[: m.start()] + "^{" + t[m.end() : end - 1] + "}" + t[end:]
    t = _PLAIN_FUNCTION.sub(r"\\\1", t)
    t = _PLAIN_CONSTANT.sub(lambda m: "\\infty" if m.group(1).startswith("inf") else "\\" + m.group(1), t)
    t = t.replace("<=", "\\le ").replace(">=", "\\ge ").replace("!=", "\\ne ").replace("+/-", "\\pm ")
    t = re.sub(r"(?<=\w)\s+in\s+(?=[\[(])", r" \\in ", t)
    t = re.sub(r"(?<=[\])}])\s*U\s*(?=[\[({]|\\\{)", r" \\cup ", t)
    return re.sub(r"\\(le|ge|ne|pm) +", r"\\\1 ", t)


_SET_SPELLINGS = ((re.compile(r"^\\(?:varnothing|O)$|^\\\{\s*\\\}$|^\{\s*\}$"), "\\emptyset"),
                  (re.compile(r"^\\R$|^\\mathbb\s*R$"), "\\mathbb{R}"))


PHRASES = {
    "all real numbers": "(-\\infty, \\infty)", "all reals": "(-\\infty, \\infty)", "all real x": "(-\\infty, \\infty)",
    "every real number": "(-\\infty, \\infty)", "any real number": "(-\\infty, \\infty)",
    "all real values": "(-\\infty, \\infty)", "all real values of x": "(-\\infty, \\infty)",
    "the real numbers": "(-\\infty, \\infty)", "real numbers": "(-\\infty, \\infty)",
    "no solution": "\\emptyset", "no solutions": "\\emptyset", "none": "\\emptyset", "empty set": "\\emptyset",
    "the empty set": "\\emptyset", "there is no solution": "\\emptyset", "there are no solutions": "\\emptyset",
}
"""Phrases that name a set, written the way a set is written in LaTeX: a reference "all real
numbers" is right for `\\mathbb{R}` and `(-\\infty, \\infty)`, wrong for `x > 0`. A phrase with
another meaning ("no real solution", "does not exist") is compared only with the same words."""


def phrase(text: str) -> str | None:
    r"""The words of an answer that is only words (one or more), lower case and joined by
    single spaces; None for an answer with digits or math in it.

    >>> phrase("\\text{All Real Numbers.}"), phrase("None"), phrase("x = 2")
    ('all real numbers', 'none', None)
    """
    bare = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", text).replace("$", "").strip().rstrip(".")
    if not _WORDS.fullmatch(bare) or not re.search(r"[A-Za-z]{2,}", bare):
        return None
    return " ".join(re.findall(r"[a-z]+", bare.lower()))


_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*[eE]\s*([+-]?\d+)(?![\w.])")
_TIMES_TEN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?")
_THOUSANDS = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))")  # `32,\! 349`: MATH's thousands separator


def normalize(text: str, units: tuple[str, ...] = UNITS) -> str:
    r"""One written form for both sides: scientific notation as `a\\times10^{b}`, units and
    unit words after a number dropped, dollar signs and degree marks dropped.

    >>> normalize("4.5e33"), normalize("4.5 \\times 10^{33}"), normalize("9 (apples)"), normalize("15\\mbox{ cm}^2")
    ('4.5\\times10^{33}', '4.5\\times10^{33}', '9', '15')
    >>> normalize("\\$1,200 dollars"), normalize("90^\\circ"), normalize("x^2 + 3")
    ('1,200', '90', 'x^2 + 3')
    >>> normalize("12 \\mathrm{~min}"), normalize("100 \\mathrm{~N}"), normalize("9.8 \\mathrm{m/s^2}"), normalize("50\\%")
    ('12', '100', '9.8', '50')
    >>> normalize("32,\\! 349")  # MATH's thousands separator
    '32,349'
    >>> normalize("sqrt(2)/2"), normalize("\\varnothing"), normalize("\\{ \\}")  # plain-text math; the empty set
    ('\\sqrt{2}/2', '\\emptyset', '\\emptyset')
    >>> normalize("0.06 yuan"), normalize("2 pi")  # a number and a word: its unit
    ('0.06', '2 \\pi')
    """
    t = _unwrap(_THOUSANDS.sub(",", text.strip()).replace("\\$", "").replace("$", "").replace("\\!", ""))
    t = _SPACING.sub(" ", t).strip()
    t = re.sub(r"\^\s*\{?\\circ\}?", "", t).replace("°", "")
    t = re.sub(r"(?<=[\d}])\s*\\?%\s*$", "", t)  # a percent sign after a number
    # a unit spelled in LaTeX after a number: \mathrm{km/h}, \text{ m}^2, \mathrm{kg \cdot m/s^2}
    t = re.sub(r"(?<=[\d}])\s*\\(?:mathrm|text|textbf|textnormal|textrm|mbox|rm)\{\s*[A-Za-z]{1,6}(?:\s*(?:/|\\cdot|\^)\s*[A-Za-z0-9]{1,6})*\s*\}"
               r"(?:\s*\^\s*\{?-?\d\}?)?\s*$", "", t)
    t = plain_math(t)
    for spelling, written in _SET_SPELLINGS:
        t = spelling.sub(written.replace("\\", "\\\\"), t)
    t = _E_NOTATION.sub(r"\1\\times10^{\2}", t)
    t = _TIMES_TEN.sub(r"\1\\times10^{\2}", t)
    t = _unit_after_number(tuple(units)).sub("", t)
    t = t.strip().rstrip(".").strip()
    counted = re.fullmatch(r"(-?\d[\d,]*(?:\.\d+)?)\s+([A-Za-z]{3,})", t)  # "0.06 yuan": a number and its word
    return counted.group(1) if counted and _is_word(counted.group(2)) else t


@lru_cache(maxsize=16)
def _unit_after_number(units: tuple[str, ...]) -> re.Pattern:
    """A unit word of `units` (plain, in `\\text{}`, or in parentheses) at the end, after a number."""
    words = "|".join(sorted((re.escape(u) for u in units), key=len, reverse=True))
    unit = rf"(?:\\(?:text|mbox|mathrm)\{{\s*(?:{words})\s*\}}|\(\s*(?:{words})\s*\)|(?:{words}))(?:\s*\^\s*\{{?\d\}}?)?"
    return re.compile(rf"(?<=[\d}}])\s*{unit}\s*$")


_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_SHORT_WORDS = frozenset("am an as at be by do go he if in is it me my no of on so to up us we".split())
_MATH_WORDS = frozenset(_FUNCTIONS + _GREEK_NAMES + ("sqrt", "max", "min", "lim", "gcd", "lcm", "mod", "det", "arg",
                                                     "deg", "pi", "inf", "infinity"))


def _is_word(token: str) -> bool:
    """An English word rather than letters written together (`xy`, `cy`: products) or a
    function's name: two letters only if a common word, three or more with a vowel."""
    w = token.lower()
    if w in _MATH_WORDS or w in ("and", "or"):
        return False
    return w in _SHORT_WORDS if len(w) == 2 else bool(re.search(r"[aeiou]", w))


def is_prose(text: str) -> bool:
    r"""Two or more words outside LaTeX commands and `\\text{}`: a sentence, not an answer
    that can be compared as a whole. Letters written together (`xy - cy = c`) and function
    names (`sin`, `sqrt`) are not words.

    >>> is_prose("The ball lands after 10 seconds"), is_prose("\\text{Evelyn}"), is_prose("\\sin x + 2")
    (True, False, False)
    >>> is_prose("2 and 5"), is_prose("x = 2 or x = 3"), is_prose("xy - cy = c"), is_prose("sin x + cos x")
    (False, False, False, False)
    """
    bare = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{[^{}]*\}|\\(?:begin|end)\{[a-z*]+\}", " ", text)
    bare = re.sub(r"\\[a-zA-Z]+", " ", bare)
    return sum(map(_is_word, _WORD.findall(bare))) >= 2


def parts(text: str) -> list[str]:
    r"""The parts of a multi-part answer: lines, or `;`-separated (matrices and cases kept whole).

    >>> parts("x = 2\ny = 3"), parts("(a) 4; (b) 7"), parts("\\begin{pmatrix}1\\\\2\\end{pmatrix}")
    (['x = 2', 'y = 3'], ['4', '7'], ['\\begin{pmatrix}1\\\\2\\end{pmatrix}'])
    """
    if "\\begin" in text:
        return [text.strip()]
    pieces = [p.strip() for p in re.split(r"\n|;", text) if p.strip()]
    return [re.sub(r"^\(?[a-z]\)\s*|^\(?[ivx]+\)\s+", "", p).strip() for p in pieces] or [text.strip()]


_OR = re.compile(r"\s*(?:\\text\{\s*or\s*\}|\\mbox\{\s*or\s*\}|\bor\b)\s*")
_AND = re.compile(r",\s*|\s*\\text\{\s*and\s*\}\s*|\s+and\s+")
_LABEL = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*(?:=|\\equiv(?![a-zA-Z]))\s*(.+)$", re.S)
_TUPLE_LABEL = re.compile(r"^\s*\(\s*([A-Za-z](?:_\{?\w+\}?)?(?:\s*,\s*[A-Za-z](?:_\{?\w+\}?)?)+)\s*\)\s*=\s*\((.*)\)\s*$",
                          re.S)


def top_level(text: str, separators: re.Pattern, keep: bool = False):
    r"""`text` split at the matches of `separators` outside brackets (`()`, `[]`, `{}`, `\{\}`);
    with `keep`, also the separators found (stripped).

    >>> top_level("r = 4, C = (2, -1)", re.compile(",")), top_level("\\{1, 2\\}", re.compile(","))
    (['r = 4', ' C = (2, -1)'], ['\\{1, 2\\}'])
    """
    out, seps, depth, start, i = [], [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = separators.match(text, i)
            if m and m.end() > i:
                out.append(text[start:i])
                seps.append(m.group().strip())
                start = i = m.end()
                continue
        i += 1
    out.append(text[start:])
    return (out, seps) if keep else out


_LINK = re.compile(r"\s*(?:(?<![<>!:=\\])=(?!=)|\\approx(?![a-zA-Z]))\s*")
_NAME = re.compile(r"(?:[A-Za-z]|\\(?:alpha|beta|gamma|delta|theta|lambda|mu|omega|phi|rho|sigma))"
                   r"(?:_\{?\w+\}?)?(?:\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\))?")


def links(text: str) -> tuple[list[str], list[str]]:
    r"""The links of a chain `a = b \approx c` and the joints between them (`=`, `\approx`);
    `\le`, `<=`, `==` and `=` inside brackets do not join.

    >>> links("i^{18} = (i^4)^4 \\cdot i^2 = -1")
    (['i^{18}', '(i^4)^4 \\cdot i^2', '-1'], ['=', '='])
    >>> links("\\tan(1) \\approx 1.557"), links("\\sum_{k=1}^{n} k \\le 3")
    ((['\\tan(1)', '1.557'], ['\\approx']), (['\\sum_{k=1}^{n} k \\le 3'], []))
    """
    pieces, joints = top_level(text, _LINK, keep=True)
    return [p.strip() for p in pieces], joints


def tolerance(text: str) -> Fraction:
    """Half a unit of the last digit shown: how far `\approx 1.557` may be from the truth.

    >>> tolerance("1.557"), tolerance("12"), tolerance("2.5e-3")
    (Fraction(1, 2000), Fraction(1, 2), Fraction(1, 20000))
    """
    m = re.search(r"\.(\d+)", text)
    tol = Fraction(1, 2 * 10 ** len(m.group(1))) if m else Fraction(1, 2)
    e = re.search(r"(?:[eE]|10\^\{?)([+-]?\d+)", text)
    return tol * Fraction(10) ** int(e.group(1)) if e else tol


def chain_checks(ref: str, ans: str) -> list[tuple]:
    r"""The checks that decide one reference part against one answer part, every link of a
    chain among them. Two sides of at most one `=` are left whole (equations are compared as
    equations by the worker); otherwise a leading name (`x =`, `f(x) =`) is a label, and
    - chains of the same length are compared link by link;
    - else every link the answer asserts must hold (`=` exactly, `pprox` to the precision it
      shows), its first link must be the reference's first (where both have several) and its
      last value the reference's last.
    A check is `("same", reference, answer)`, `("approx", exact, shown)` or `("known", verdict, why)`.

    >>> chain_checks("-1", "i^{19} = (i^4)^4 \\cdot i^2 = -1")
    [('same', 'i^{19}', '(i^4)^4 \\cdot i^2'), ('same', '(i^4)^4 \\cdot i^2', '-1'), ('same', '-1', '-1')]
    >>> chain_checks("x = 2", "x = 2")
    [('same', 'x = 2', 'x = 2')]
    >>> chain_checks("1.557", "\\tan(1) \\approx 1.557")
    [('approx', '\\tan(1)', '1.557'), ('same', '1.557', '1.557')]

    An equation between intervals (or sets) is a chain too, both sides compared:

    >>> chain_checks("[2, 5)", "[4/2, 10/2) = [2, 5)")
    [('same', '[4/2, 10/2)', '[2, 5)'), ('same', '[2, 5)', '[2, 5)')]
    """
    (r, rj), (a, aj) = links(ref), links(ans)
    if len(r) <= 2 and len(a) <= 2 and "\\approx" not in rj + aj and not (_set_equation(r) or _set_equation(a)):
        return [("same", ref, ans)]
    r_name = r[0] if len(r) > 1 and _NAME.fullmatch(r[0]) else None
    a_name = a[0] if len(a) > 1 and _NAME.fullmatch(a[0]) else None
    if r_name and a_name and canonical(r_name) != canonical(a_name):
        return [("known", False, f"the answer names {a_name}, the reference {r_name}")]
    if r_name:
        r, rj = r[1:], rj[1:]
    if a_name:
        a, aj = a[1:], aj[1:]
    if len(r) == len(a):
        return [("same", x, y) for x, y in zip(r, a)]
    checks = [("approx" if j == "\\approx" else "same", x, y) for x, j, y in zip(a, aj, a[1:])]
    if len(r) > 1 and len(a) > 1:
        checks.append(("same", r[0], a[0]))
    return checks + [("same", r[-1], a[-1])]


_SET_LIKE = re.compile(r"(?:\\left)?[\[(].*,.*[\])]|\\\{.*\\\}|.*\\cup(?![a-zA-Z]).*|\\emptyset|\\mathbb\{R\}", re.S)


def _set_equation(chain: list[str]) -> bool:
    r"""Two links that are both intervals, unions or sets (`[1, 3) = [2/2, 3)`): math-verify
    cannot read such an equation whole, so its sides are compared one by one.

    >>> _set_equation(["[1, 3)", "[2/2, 3)"]), _set_equation(["x", "[1, 3)"]), _set_equation(["(x, y)", "(1, 2)"])
    (True, False, False)
    """
    names = re.compile(r"\(\s*[A-Za-z](?:_\{?\w+\}?)?(?:\s*,\s*[A-Za-z](?:_\{?\w+\}?)?)+\s*\)")  # `(x, y) =` labels
    return len(chain) == 2 and all(_SET_LIKE.fullmatch(link.strip()) and not names.fullmatch(link.strip()) for link in chain)


def list_items(text: str) -> tuple[str, list[str], list[str | None]]:
    r"""A list answer's parts and how they compare: `ordered` (a tuple or a sequence: part by
    part in order), `set` (roots, or parts joined by "or": in any order), `labelled` (`r = 4,
    C = (2, -1)`: by name), or `one` (not a list; a number with thousands separators is one).
    Returns the mode, the parts (their values, for labelled and set parts) and their names.

    >>> list_items("3, 1, 4, 1"), list_items("1,000"), list_items("11,\\! 111,\\! 100")
    (('ordered', ['3', '1', '4', '1'], [None, None, None, None]), ('one', ['1,000'], [None]), ('one', ['11,111,100'], [None]))
    >>> list_items("x = 1, x = -2")[:2], list_items("2 \\text{ or } 3")[:2], list_items("r = 4, C = (2, -1)")
    (('set', ['1', '-2']), ('set', ['2', '3']), ('labelled', ['4', '(2, -1)'], ['r', 'C']))
    >>> list_items("19, 46, and 82")[:2], list_items("a=4, -8, -10")[:2], list_items("6 \\text{ and } 8")[:2]
    (('ordered', ['19', '46', '82']), ('set', ['4', '-8', '-10']), ('ordered', ['6', '8']))

    Labels repeated among others (`C_2 = 1, C_2 = 3, C_3 = 2`) leave the parts whole, in order,
    with their names:

    >>> list_items("C_2=1, C_2=3, C_3=2")
    ('ordered', ['C_2=1', 'C_2=3', 'C_3=2'], ['C_2', 'C_2', 'C_3'])
    """

    t = _THOUSANDS.sub(",", text.strip())
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", t):
        return "one", [t], [None]
    by_or = [p.strip() for p in top_level(t, _OR)]
    pieces = [re.sub(r"^(?:\\text\{\s*and\s*\}|and\b)\s*", "", p.strip()).strip()
              for part in by_or for p in top_level(part, _AND) if p.strip()]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2:
        return "one", [t], [None]
    labels = [_LABEL.match(p) for p in pieces]
    if all(labels):
        names = [m.group(1) for m in labels]
        values = [m.group(2).strip() for m in labels]
        if len(set(names)) == 1:
            return "set", values, names
        if len(set(names)) == len(names):
            return "labelled", values, names
    if labels[0] and not any(labels[1:]):  # `a = 4, -8, -10`: the values of one name
        return "set", [labels[0].group(2).strip()] + pieces[1:], [labels[0].group(1)] + [None] * (len(pieces) - 1)
    return ("set" if len(by_or) > 1 else "ordered"), pieces, [m.group(1) if m else None for m in labels]


def tuple_labels(text: str) -> tuple[list[str], list[str]] | None:
    r"""The values and names of `(a, b) = (1, 2)`, a tuple of distinct names labelling as many
    values; else None.

    >>> tuple_labels("(a, b) = (1, 2)"), tuple_labels("(x, y) = (5, 8) \\text{ and } (8, 5)")
    ((['1', '2'], ['a', 'b']), None)
    """
    tupled = _TUPLE_LABEL.match(text)
    if not tupled or _braced(f"({tupled.group(2)})", 0) != len(tupled.group(2)) + 2:
        return None
    names = [n.strip() for n in tupled.group(1).split(",")]
    values = [v.strip() for v in top_level(tupled.group(2), re.compile(","))]
    return (values, names) if len(values) == len(names) == len(set(names)) else None


def plain_number(text: str) -> Fraction | None:
    r"""An exact value for a plain number, else None.

    >>> plain_number("$1,000."), plain_number("-0.50"), plain_number("3/4"), plain_number("x+1")
    (Fraction(1000, 1), Fraction(-1, 2), Fraction(3, 4), None)
    >>> plain_number("4.5e3"), plain_number("2.5\\times10^{-2}"), plain_number("-\\dfrac{3}{4}")
    (Fraction(4500, 1), Fraction(1, 40), Fraction(-3, 4))
    >>> plain_number("32, 349")  # a comma and a space part a list
    """
    if re.search(r",\s", text):
        return None
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


class MathVerifyPool:
    """math-verify calls in `workers` processes, each call with a deadline of `timeout` s."""

    def __init__(self, workers: int = 2, timeout: float = 5.0):
        self.size, self.timeout = workers, timeout
        self._workers: list[Worker] = []
        atexit.register(self.close)

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []

    def _spawn(self) -> Worker:
        # `selftrain.plugins.Worker`'s framing and replies; importing sympy takes a moment
        return Worker(module="selftrain.verifiers._math_worker", setting="the math verifier (is math-verify installed?)",
                      ready_timeout=120)

    def check(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[bool | None, str]]:
        if not pairs:
            return []
        while len(self._workers) < min(self.size, len(pairs)):
            self._workers.append(self._spawn())
        out: list[tuple[bool | None, str] | None] = [None] * len(pairs)
        todo = deque(enumerate(pairs))
        idle = list(self._workers)
        busy: dict[Worker, tuple[int, float]] = {}
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
                    kind, detail = w.reply(0)
                    if kind in ("ok", "raised"):
                        out[i] = detail if kind == "ok" else (None, detail)
                        del busy[w]
                        idle.append(w)
                        continue
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
        self._cache: dict[tuple[str, str, bool], tuple[bool | None, str]] = {}

    covers = ("selftrain.verifiers._math_worker",)
    """Code its verdicts come from that it reaches other than by name (the worker's module):
    in its fingerprint with its own (`artifacts.describe`)."""

    def describe(self) -> dict:
        """Its settings, for a stage's fingerprint (its code is added: `artifacts.describe`)."""
        return {"kind": "math", "timeout": self.pool.timeout, "units": list(self.units)}

    def close(self) -> None:
        self.pool.close()

    def _plan(self, reference: str, answer: str, as_set: bool = False) -> tuple[str, list[tuple]] | tuple[bool | None, str]:
        """A verdict at once, or how the checks combine (`all`, `set`) and the checks
        (`chain_checks`) still to make. `as_set`: the problem asks for a set (all solutions)."""
        ref, ans = normalize(reference, self.units), normalize(answer, self.units)
        if canonical(reference) == canonical(answer) or canonical(ref) == canonical(ans):
            return True, "the reference itself"
        ref_phrase = phrase(reference)
        if ref_phrase is not None and (words(reference) is not None or ref_phrase in PHRASES):
            # words are compared as words, never by a number found in them; a phrase that names a
            # set (`PHRASES`) is compared as that set with an answer written in math
            ans_phrase, meaning = phrase(answer), PHRASES.get(ref_phrase)
            if ans_phrase == ref_phrase:
                return True, "the same words"
            if meaning is not None and PHRASES.get(ans_phrase) == meaning:
                return True, f"words that mean the same ({ans_phrase})"
            if meaning is None or ans_phrase is not None or is_prose(answer):
                return None, "the reference is words; the answer is not the same words"
            ref = meaning
        elif is_prose(reference):
            return None, "the reference is prose, not an answer to compare whole"
        if is_prose(answer):
            return None, "the answer is prose, not an answer to compare whole"
        ref_parts, ans_parts = parts(ref), parts(ans)
        if len(ref_parts) != len(ans_parts) and 1 in (len(ref_parts), len(ans_parts)):
            # the same parts on lines (or `;`) on one side, in a list on the other
            joined_ref, joined_ans = _one_line(ref_parts, ans_parts), _one_line(ans_parts, ref_parts)
            if joined_ref != ref_parts:
                ref, ref_parts = joined_ref[0], joined_ref
            if joined_ans != ans_parts:
                ans, ans_parts = joined_ans[0], joined_ans
        if len(ref_parts) > 1:
            if len(ans_parts) != len(ref_parts):
                return None, f"the reference has {len(ref_parts)} parts, the answer {len(ans_parts)}"
            pairs = list(zip(ref_parts, ans_parts))
        else:
            mode, items, names = list_items(ref)
            a_mode, a_items, a_names = list_items(ans)
            # a tuple of names labels its values where the other side gives labelled values
            if mode == "one" and a_mode == "labelled" and (tupled := tuple_labels(ref)):
                mode, (items, names) = "labelled", tupled
            elif a_mode == "one" and mode == "labelled" and (tupled := tuple_labels(ans)):
                a_mode, (a_items, a_names) = "labelled", tupled
            if mode == "one":
                return "all", chain_checks(ref, ans.replace("\n", " "))
            if len(a_items) != len(items):
                return False, f"the reference has {len(items)} parts, the answer {len(a_items)}"
            mislabelled = _mislabelled(mode, names, a_names)
            if mislabelled:
                return False, mislabelled
            if mode == "labelled" and a_mode == "set" and a_names[0] is not None:
                return False, f"the answer gives values of one name; the reference of {', '.join(names)}"
            if mode == "labelled" and a_mode == "labelled":
                given = dict(zip(map(_name_key, a_names), a_items))
                pairs = [(item, given[_name_key(name)]) for item, name in zip(items, names)]
            elif mode == "set" or as_set:
                return "set", [("same", r, a) for r in items for a in a_items]
            else:
                pairs = list(zip(items, a_items))
        return "all", [check for r, a in pairs for check in chain_checks(r, a)]

    def __call__(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Score]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        answers = [extract_answer(c) for c in completions]
        keys = [(p.answer, answer, bool(_ASKS_FOR_A_SET.search(p.prompt))) for p, (answer, _) in zip(problems, answers)]
        plans: dict[tuple[str, str, bool], tuple[str, list[tuple]] | tuple[bool | None, str]] = {}
        for key in keys:
            if key[1] is not None and key not in self._cache and key not in plans:
                plans[key] = self._plan(*key)
        verdicts: dict[tuple, tuple[bool | None, str]] = {}
        slow: list[tuple] = []
        for plan in plans.values():
            for check in plan[1] if isinstance(plan[1], list) else []:
                fast = _fast(check)
                if fast is not None:
                    verdicts[check] = fast
                elif check not in verdicts and check not in slow:
                    slow.append(check)
        verdicts.update(zip(slow, self.pool.check(slow)))
        for key, plan in plans.items():
            if not isinstance(plan[1], list):
                self._cache[key] = plan
            elif plan[0] == "set":
                self._cache[key] = _match([verdicts[check] for check in plan[1]])
            else:
                self._cache[key] = _combine([verdicts[check] for check in plan[1]])
        out = []
        for problem, (answer, how), key in zip(problems, answers, keys):
            if answer is None:
                out.append(Score(0.0, how))
                continue
            ok, why = self._cache[key]
            if ok is None:
                out.append(Score(None, why, answer))
            elif ok:
                out.append(Score(1.0, f"correct ({answer})", answer))
            else:
                detail = f" ({why})" if why.startswith("could not") else ""
                out.append(Score(0.0, f"wrong answer {answer}, expected {problem.answer}{detail}", answer))
        return out


def _name_key(name: str) -> str:
    """A label's name for comparison: `C_{2}` is `C_2`."""
    return re.sub(r"[{}\s]", "", name)


def _mislabelled(mode: str, names: list[str | None], a_names: list[str | None]) -> str | None:
    r"""Why an answer's labels cannot be the reference's, or None. Labels are a mapping: an
    answer's label must be one of the reference's, and given no more often than the
    reference gives it (a label repeated in place of another never matches); the values of
    one name (`x = 1, x = -2`) must all be that name's. An answer that labels only some of
    its parts is left to the parts' comparison.

    >>> _mislabelled("labelled", ["C_1", "C_2"], ["C_2", "C_2"])
    'the answer labels its parts C_2, C_2; the reference C_1, C_2'
    >>> _mislabelled("set", ["x", "x"], ["x", "y"]), _mislabelled("labelled", ["a", "b"], ["b", "a"])
    ('the answer gives values of x, y; the reference of x', None)
    >>> _mislabelled("labelled", ["a", "b"], ["a", None]), _mislabelled("labelled", ["a", "b"], ["c", None])
    (None, 'the answer labels its parts c, ?; the reference a, b')
    """
    given = Counter(_name_key(n) for n in a_names if n)
    if not given:
        return None
    if mode == "set" and names[0]:
        if set(given) != {_name_key(names[0])}:
            return f"the answer gives values of {', '.join(dict.fromkeys(n for n in a_names if n))}; the reference of {names[0]}"
        return None
    if all(names):
        wanted = Counter(_name_key(n) for n in names)  # type: ignore[arg-type]
        if any(count > wanted[name] for name, count in given.items()):
            return f"the answer labels its parts {', '.join(n or '?' for n in a_names)}; the reference {', '.join(names)}"  # type: ignore[arg-type]
    return None


def _one_line(mine: list[str], other: list[str]) -> list[str]:
    r"""`mine`, parts on lines or `;`, as one list (`x = 2, y = 3`) where the other side is one
    part listing as many items; else as it is.

    >>> _one_line(["x = 2", "y = 3"], ["x = 2, y = 3"]), _one_line(["x = 2", "y = 3"], ["2"])
    (['x = 2, y = 3'], ['x = 2', 'y = 3'])
    """
    if len(mine) < 2 or len(other) != 1 or len(list_items(other[0])[1]) != len(mine):
        return mine
    joined = ", ".join(mine)
    return [joined] if len(list_items(joined)[1]) == len(mine) else mine


_ASKS_FOR_A_SET = re.compile(
    r"separated by commas|in any order|all (?:the )?(?:possible |real |integer |complex |distinct )*"
    r"(?:solutions|roots|values|zeros|numbers|integers)", re.I)
"""A problem whose listed answer is a set: its parts are matched in any order."""


def _fast(check: tuple) -> tuple[bool | None, str] | None:
    """A check decided here, without math-verify: a known verdict, or plain numbers (exactly;
    `\\approx` to the precision shown). None: the check goes to a worker."""
    if check[0] == "known":
        return check[1], check[2]
    x, y = plain_number(check[1]), plain_number(check[2])
    if x is None or y is None:
        return None
    if check[0] == "approx":
        return abs(x - y) <= tolerance(check[2]), f"{check[2]} to the precision shown"
    return x == y, "numbers"


def _match(verdicts: list[tuple[bool | None, str]]) -> tuple[bool | None, str]:
    """Parts as a set: the verdicts of every (reference part, answer part), row by row; right
    when each answer part is a distinct reference part, wrong when not even the unjudged
    pairs could make it so, else unjudged.

    >>> _match([(True, ""), (False, ""), (False, ""), (True, "")]), _match([(False, ""), (True, ""), (True, ""), (False, "")])
    ((True, '2 parts, in any order'), (True, '2 parts, in any order'))
    >>> _match([(True, ""), (False, ""), (True, ""), (False, "")])[0]
    False
    """
    n = round(len(verdicts) ** 0.5)

    def perfect(ok) -> bool:
        owner: dict[int, int] = {}

        def place(r: int, seen: set[int]) -> bool:
            for a in range(n):
                if ok(verdicts[r * n + a][0]) and a not in seen:
                    seen.add(a)
                    if a not in owner or place(owner[a], seen):
                        owner[a] = r
                        return True
            return False

        return all(place(r, set()) for r in range(n))

    if perfect(lambda v: v is True):
        return True, f"{n} parts, in any order"
    if perfect(lambda v: v is not False):
        return None, "some parts could not be judged"
    return False, "the parts are not the reference's"


def _combine(verdicts: list[tuple[bool | None, str]]) -> tuple[bool | None, str]:
    """Parts together: wrong if any part is wrong, else unjudged if any is, else right."""
    for ok, why in verdicts:
        if ok is False:
            return ok, why
    for ok, why in verdicts:
        if ok is None:
            return ok, why
    return True, verdicts[0][1] if len(verdicts) == 1 else f"{len(verdicts)} parts"


def _make(cfg) -> MathVerifier:
    return MathVerifier(timeout=cfg.timeout, **({} if getattr(cfg, "units", None) is None else {"units": tuple(cfg.units)}))


KIND = VerifierKind("math", _make, frozenset({"answer"}))
"""`verifier: math`: the final answer against the reference (`timeout` seconds a judgement, `units`)."""
