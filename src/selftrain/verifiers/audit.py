"""Audit a verifier before trusting it: gold answers must pass, perturbed ones must not.

A verifier that rejects right answers starves self-training; one that accepts wrong
answers teaches the model its mistakes. `perturbations` makes wrong answers from a right
one, the four kinds a checker most often confuses: off by one, sign flipped, a wrong
fraction, and another problem's answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

from selftrain.verifiers.math import plain_number


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"\\frac{{{x.numerator}}}{{{x.denominator}}}"


def perturbations(answer: str, other: str) -> dict[str, str]:
    """Wrong answers made from `answer` (and `other`, another problem's answer).

    A kind is left out where it would not change the value (the sign of 0, a fraction of 0,
    another problem's identical answer).

    >>> perturbations("3/4", "7")
    {'off by one': '\\\\frac{7}{4}', 'sign flipped': '\\\\frac{-3}{4}', 'wrong fraction': '\\\\frac{3}{5}', 'another answer': '7'}
    >>> sorted(perturbations("0", "0"))
    ['off by one']
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
    other_n = plain_number(other)
    same = (n == other_n) if n is not None and other_n is not None else other.replace(" ", "") == answer.replace(" ", "")
    if not same:
        out["another answer"] = other
    return out
