"""Audit a verifier before trusting it: gold answers must pass, perturbed ones must not.

A verifier that rejects right answers starves self-training; one that accepts wrong
answers teaches the model its mistakes. `perturbations` makes wrong answers from a right
one, the kinds a checker most often confuses: off by one, sign flipped, a wrong fraction,
another problem's answer, an equation with one coefficient changed, a matrix with one
entry changed, the answer restated as a false equation (`x = x + 1` in the answer's own
terms), a false link before the right value (`x + 1 = x`), one link of a chain changed, one
part of a list or a labelled answer changed, the sign of a tiny number flipped, a
coefficient inside a floor or ceiling changed, an interval's last endpoint or one bracket
changed, an interval equation whose left side is wrong (`[1, 4) = [1, 3)`), a label renamed
to another part's (`C_2 = 1, C_2 = 3`), a subscripted name's subscript changed (`E_1` to
`E_2`), a free parameter changed (`c` to `(c+1)`). `audit` runs a verifier over gold answers,
the references' own text, and perturbed answers, keeps examples of every failure class and
counts math-verify's exceptions; `selftrain audit-verifier DATA.jsonl` prints it for your
own data.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from selftrain.records import Problem
from selftrain.verifiers.base import Verifier
from selftrain.verifiers.math import _SET_LIKE, links, list_items, plain_number

_INTEGER = re.compile(r"(?<![\w.\\^_{])\d+(?![\d.])")


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"\\frac{{{x.numerator}}}{{{x.denominator}}}"


def _bump_first_integer(text: str) -> str | None:
    """`text` with its first free-standing integer one larger, or None if it has none."""
    m = _INTEGER.search(text)
    return None if m is None else text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :]


def _bump_in(text: str, part: str) -> str | None:
    """`text` with the first integer (exponents and braces included) of its first
    occurrence of `part` one larger."""
    m = re.search(r"(?<![\w.])\d+(?![\d.])", part)
    bumped = None if m is None else part[: m.start()] + str(int(m.group()) + 1) + part[m.end() :]
    i = text.find(part)
    return None if bumped is None or i < 0 else text[:i] + bumped + text[i + len(part) :]


_INTERVAL = re.compile(r"([\[(])([^\[\]()]*(?:\([^()]*\)[^\[\]()]*)*),([^\[\]()]*(?:\([^()]*\)[^\[\]()]*)*)([\])])")
_SUBSCRIPTED = re.compile(r"(?<![\\A-Za-z])((?:\\[a-zA-Z]+|[A-Za-z])_\{?)(\d+)(\}?)")
_LETTER = re.compile(r"(?<![\\A-Za-z])[a-zA-Z](?![A-Za-z])")


def _intervals(answer: str) -> dict[str, str]:
    """An interval (or a union's) last endpoint one larger, one bracket of its first interval
    flipped (an infinite end keeps its round bracket), and the interval equation `bumped =
    answer`."""
    out: dict[str, str] = {}
    if not (_SET_LIKE.fullmatch(answer.strip()) or "\\cup" in answer) or "\\{" in answer or "=" in answer:
        return out
    last = list(_INTEGER.finditer(answer))
    if last:
        m = last[-1]
        out["interval endpoint"] = answer[: m.start()] + str(int(m.group()) + 1) + answer[m.end() :]
        out["interval false link"] = f"{out['interval endpoint']} = {answer}"
    first = _INTERVAL.search(answer)
    if first and "infty" not in first.group(3):
        close = {"]": ")", ")": "]"}[first.group(4)]
        out["interval bracket"] = answer[: first.end() - 1] + close + answer[first.end() :]
    elif first and "infty" not in first.group(2):
        out["interval bracket"] = answer[: first.start()] + {"[": "(", "(": "["}[first.group(1)] + answer[first.start() + 1 :]
    return out


def _names(answer: str, mode: str, names: list) -> dict[str, str]:
    """A label renamed to the next part's (`C_1 = 1, C_2 = 3` to `C_2 = 1, C_2 = 3`), the first
    numbered subscript changed (`E_1` to `E_2`), a free parameter changed: in an expression
    of two or more names (after a leading `y =`), the first that is not x, y, z or t, its
    first use written `(c+1)`."""
    out: dict[str, str] = {}
    if mode == "labelled" and len(names) > 1 and names[0] != names[1]:
        label = re.match(rf"\s*{re.escape(names[0])}(?=\s*=)", answer)
        if label:
            out["duplicate label"] = answer[: label.start()] + names[1] + answer[label.end() :]
    sub = _SUBSCRIPTED.search(answer)
    if sub:
        out["subscripted name"] = answer[: sub.start(2)] + str(int(sub.group(2)) + 1) + answer[sub.end(2) :]
    if mode == "one" and "\\begin" not in answer:
        body = re.sub(r"\\(?:text|mathrm|operatorname|mathbf)\{[^{}]*\}", lambda m: " " * len(m.group()), answer)
        lhs = re.match(r"\s*[A-Za-z]\s*=", body)
        start = lhs.end() if lhs else 0
        letters = [m for m in _LETTER.finditer(body, start) if m.group() not in "eEi" and body[m.end() : m.end() + 1] != "_"]
        distinct = list(dict.fromkeys(m.group() for m in letters))
        parameters = [name for name in distinct if name not in "xyzt"]  # x, y, z, t: the variables
        if len(distinct) >= 2 and parameters:
            m = next(m for m in letters if m.group() == parameters[0])
            out["free parameter"] = answer[: m.start()] + f"({m.group()}+1)" + answer[m.end() :]
    return out


def _structural(answer: str) -> dict[str, str]:
    """The perturbations that change one part of an answer with parts: a chain's first link,
    a list's first part, a labelled answer's first value, a tiny number's sign, a
    coefficient inside a floor or ceiling; an interval's endpoint or bracket; a label, a
    subscript or a free parameter (`_intervals`, `_names`)."""
    out: dict[str, str] = {}
    chain, _ = links(answer)
    if len(chain) >= 3 or (len(chain) == 2 and "\\approx" in answer):
        bumped = _bump_in(answer, chain[0])
        if bumped and bumped != answer:
            out["chain link"] = bumped
    mode, items, names = list_items(answer)
    if mode != "one":
        bumped = _bump_in(answer, items[0])
        if bumped and bumped != answer:
            out["labelled part" if mode == "labelled" else "list part"] = bumped
    out |= _intervals(answer) | _names(answer, mode, names)
    n = plain_number(answer)
    if n is not None and n != 0 and abs(n) < Fraction(1, 1000):
        out["tiny number sign"] = f"-({answer})"
    floor = re.search(r"\\l(?:floor|ceil)(.*?)\\r(?:floor|ceil)", answer)
    if floor:
        bumped = _bump_in(answer, floor.group(1))
        if bumped and bumped != answer:
            out["floor coefficient"] = bumped
    return out


def perturbations(answer: str, other: str) -> dict[str, str]:
    """Wrong answers made from `answer` (and `other`, another problem's answer).

    A kind is left out where it would not change the value (the sign of 0, a fraction of 0,
    another problem's identical answer) or does not apply (an equation's coefficient to a
    non-equation, a matrix entry to a non-matrix).

    >>> perturbations("3/4", "7")
    {'off by one': '\\\\frac{7}{4}', 'sign flipped': '\\\\frac{-3}{4}', 'wrong fraction': '\\\\frac{3}{5}', 'another answer': '7', 'false restatement': '3/4 = \\\\frac{7}{4}', 'false link': '\\\\frac{7}{4} = 3/4'}
    >>> sorted(perturbations("0", "0"))
    ['false link', 'false restatement', 'off by one']
    >>> p = perturbations("i^{18} = (i^4)^4 \\\\cdot i^2 = -1", "1")["chain link"]; p
    'i^{19} = (i^4)^4 \\\\cdot i^2 = -1'
    >>> perturbations("r = 3, C = (2, -1)", "1")["labelled part"], perturbations("2, 1, 4, 1", "1")["list part"]
    ('r = 4, C = (2, -1)', '3, 1, 4, 1')
    >>> perturbations("6.6e-34", "1")["tiny number sign"], perturbations("\\\\lfloor 3n/4 \\\\rfloor", "1")["floor coefficient"]
    ('-(6.6e-34)', '\\\\lfloor 4n/4 \\\\rfloor')
    >>> perturbations("10x^2-12x+29=0", "1")["equation coefficient"]
    '11x^2-12x+29=0'
    >>> perturbations("\\\\begin{pmatrix} 1 \\\\\\\\ 2 \\\\end{pmatrix}", "1")["matrix entry"]
    '\\\\begin{pmatrix} 2 \\\\\\\\ 2 \\\\end{pmatrix}'
    >>> p = perturbations("[-11\\\\pi/6, -7\\\\pi/6] \\\\cup [\\\\pi/6, 5\\\\pi/6]", "1")
    >>> p["interval endpoint"], p["interval bracket"]
    ('[-11\\\\pi/6, -7\\\\pi/6] \\\\cup [\\\\pi/6, 5\\\\pi/7]', '[-11\\\\pi/6, -7\\\\pi/6) \\\\cup [\\\\pi/6, 5\\\\pi/6]')
    >>> perturbations("(-\\\\infty, 3]", "1")["interval bracket"], perturbations("(-\\\\infty, 3]", "1")["interval false link"]
    ('(-\\\\infty, 3)', '(-\\\\infty, 4] = (-\\\\infty, 3]')
    >>> perturbations("C_1 = 1/5, C_2 = -3", "1")["duplicate label"], perturbations("E_1 + 2E_2", "1")["subscripted name"]
    ('C_2 = 1/5, C_2 = -3', 'E_2 + 2E_2')
    >>> perturbations("y = \\\\frac{c}{x-c}", "1")["free parameter"]
    'y = \\\\frac{(c+1)}{x-c}'
    """
    out: dict[str, str] = {}
    n = plain_number(answer)
    if n is not None:
        out["off by one"] = _fmt(n + 1)
        if n != 0:
            out["sign flipped"] = _fmt(-n)
            out["wrong fraction"] = _fmt(Fraction(n.numerator, n.denominator + 1) if n.denominator > 1 else n / 2)
    else:
        out["off by one"] = f"{answer}+1"
        out["sign flipped"] = f"-({answer})"
        frac = re.search(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", answer)
        if frac:
            num, den = frac.groups()
            out["wrong fraction"] = answer[: frac.start()] + f"\\frac{{{num}}}{{{den}+1}}" + answer[frac.end() :]
        else:
            out["wrong fraction"] = f"\\frac{{{answer}}}{{2}}"
    value = re.sub(r"^\s*[a-zA-Z]\s*=", "", other)  # another problem's `x = 5` is the value 5
    other_n = plain_number(value)
    same = (n == other_n) if n is not None and other_n is not None else value.replace(" ", "") == answer.replace(" ", "")
    if not same:
        out["another answer"] = other
    if "=" in answer and "\\begin" not in answer and (bumped := _bump_first_integer(answer)):
        out["equation coefficient"] = bumped
    if "\\begin{" in answer and "matrix" in answer:
        inner = answer[answer.index("}") + 1 :]
        bumped = _bump_first_integer(inner)
        if bumped:
            out["matrix entry"] = answer[: answer.index("}") + 1] + bumped
    if "=" not in answer and "\\begin" not in answer:
        out["false restatement"] = f"{answer} = {out['off by one']}"
        out["false link"] = f"{out['off by one']} = {answer}"
    return out | _structural(answer)


@dataclass
class AuditReport:
    """Gold answers accepted, perturbed answers rejected, and unjudged, with examples."""

    gold: Counter = field(default_factory=Counter)
    """accepted / rejected / unjudged."""
    itself: Counter = field(default_factory=Counter)
    """the reference's own text as the answer: accepted / rejected / unjudged."""
    failures: Counter = field(default_factory=Counter)
    """math-verify's exceptions (by name) among all the verdicts."""
    perturbed: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """per kind: rejected / accepted (false accepts) / unjudged."""
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """a few examples of each failure class."""

    def add_example(self, cls: str, text: str, keep: int) -> None:
        if len(self.examples[cls]) < keep:
            self.examples[cls].append(text)

    @property
    def false_accepts(self) -> int:
        return sum(c["accepted"] for c in self.perturbed.values())

    def lines(self) -> list[str]:
        g = self.gold
        total = sum(g.values())
        out = [f"gold answers: {g['accepted']}/{total} accepted, {g['rejected']} rejected, {g['unjudged']} unjudged"]
        i = self.itself
        out.append(f"the reference itself: {i['accepted']}/{sum(i.values())} accepted, {i['rejected']} rejected, "
                   f"{i['unjudged']} unjudged")
        p_total = sum(sum(c.values()) for c in self.perturbed.values())
        rejected = sum(c["rejected"] for c in self.perturbed.values())
        unjudged = sum(c["unjudged"] for c in self.perturbed.values())
        out.append(f"perturbed answers: {rejected}/{p_total} rejected, {self.false_accepts} ACCEPTED (wrong), {unjudged} unjudged")
        for kind, c in sorted(self.perturbed.items()):
            out.append(f"  {kind:22s} {c['rejected']:6d} rejected {c['accepted']:5d} accepted {c['unjudged']:5d} unjudged")
        if self.failures:
            out.append("math-verify failed: " + ", ".join(f"{name} {n}" for name, n in sorted(self.failures.items())))
        for cls, examples in sorted(self.examples.items()):
            out.append(f"examples, {cls}:")
            out += [f"  {e}" for e in examples]
        return out


def audit(verifier: Verifier, problems: Sequence[Problem], completions: Sequence[str], wrap: str = "\\boxed{{{}}}",
          examples: int = 3) -> AuditReport:
    """Gold completions against their problems' references, then every perturbation of each
    reference (written as `wrap.format(answer)`) against the same reference; the reference's
    own text, so wrapped, must be accepted too."""
    report = AuditReport()

    def failed(s) -> None:
        if s.value is None and "math-verify failed: " in s.reason:
            report.failures[s.reason.split("math-verify failed: ", 1)[1].split()[0]] += 1

    for p, s in zip(problems, verifier(problems, completions)):
        verdict = "unjudged" if s.value is None else "accepted" if s.accepted else "rejected"
        report.gold[verdict] += 1
        failed(s)
        if verdict != "accepted":
            report.add_example(f"gold {verdict}", f"{p.id}: reference {p.answer!r}, read {s.answer!r}: {s.reason}", examples)
    for p, s in zip(problems, verifier(problems, [wrap.format(p.answer) for p in problems])):
        verdict = "unjudged" if s.value is None else "accepted" if s.accepted else "rejected"
        report.itself[verdict] += 1
        failed(s)
        if verdict != "accepted":
            report.add_example(f"reference itself {verdict}", f"{p.id}: {p.answer!r}: {s.reason}", examples)
    ps, cs, kinds = [], [], []
    for i, p in enumerate(problems):
        for kind, bad in perturbations(p.answer, problems[(i + 1) % len(problems)].answer).items():
            ps.append(p)
            cs.append(wrap.format(bad))
            kinds.append(kind)
    for p, c, kind, s in zip(ps, cs, kinds, verifier(ps, cs)):
        verdict = "unjudged" if s.value is None else "accepted" if s.accepted else "rejected"
        report.perturbed[kind][verdict] += 1
        failed(s)
        if verdict != "rejected":
            report.add_example(f"perturbed {verdict} ({kind})", f"{p.id}: reference {p.answer!r}, perturbed {c!r}: {s.reason}",
                               examples)
    return report
