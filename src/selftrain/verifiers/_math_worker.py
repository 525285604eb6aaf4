"""A math-verify worker process: reads checks, writes verdicts.

A check is `("same", reference, answer)` (are the two equivalent?) or `("approx", exact,
shown)` (is the number `shown` within half a unit of its last digit of `exact`?).

Started by `selftrain.verifiers.math.MathVerifyPool` as `python -m selftrain.verifiers._math_worker`;
frames on stdin and stdout are a 4-byte length and a pickle (both ends are selftrain).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import sys
from collections import Counter
from functools import lru_cache


def _read(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send(fd: int, obj) -> None:
    data = pickle.dumps(obj)
    os.write(fd, len(data).to_bytes(4, "big") + data)


def receive(fd: int):
    head = _read(fd, 4)
    if head is None:
        return None
    body = _read(fd, int.from_bytes(head, "big"))
    return None if body is None else pickle.loads(body)


_COMMAND = re.compile(r"\\[a-zA-Z]+")


def _content(text: str, decimals: bool = True) -> Counter:
    """The digits and letters of `text` outside LaTeX commands: what a parse must keep.
    Without `decimals`, decimal numbers are left out (math-verify rewrites 0.5 as 1/2)."""
    if not decimals:
        text = re.sub(r"\d*\.\d+", " ", text)
    return Counter(c for c in _COMMAND.sub(" ", text) if c.isalnum())


@lru_cache(maxsize=8192)
def whole(text: str) -> tuple[list | None, str]:
    """math-verify's parse of the whole of `text`, or (None, why): nothing parsed, or a
    parse that dropped digits or letters of the text (a partial parse). Cached: the K
    samples of a problem share its reference."""
    from math_verify import LatexExtractionConfig, parse

    parsed = parse("\\boxed{" + text + "}", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)
    if not parsed:
        return None, "nothing parsed"
    missing = _content(text, decimals=False) - _content(parsed[-1])
    if missing:
        return None, f"parsed only in part ({parsed[-1]!r} of {text!r})"
    lost = _names(text) - {c.lower() for c in str(parsed[0]) if c.isalpha()}
    if lost:
        return None, f"parsed only in part ({parsed[0]} of {text!r}: {', '.join(sorted(lost))} lost)"
    return parsed, ""


def _names(text: str) -> set[str]:
    """The letters of `text` that name something (outside LaTeX commands and `\\text{}`),
    `e` and `i` aside (sympy writes them E and I): each must survive a parse."""
    text = re.sub(r"\\(?:text|mathrm|mbox|operatorname|mathbf|begin|end)\{[^{}]*\}", " ", text)
    return {c.lower() for c in _COMMAND.sub(" ", text) if c.isalpha()} - set("ei")


def _same(x, y) -> bool:
    from math_verify import verify

    return bool(verify(x, y, timeout_seconds=None))


def _far_apart(x, y) -> bool:
    """True when two expressions differ numerically at random points (fast, and safe: only a
    clear difference counts; anything else goes to the symbolic check)."""
    import random

    import sympy

    if not (isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr)):
        return False
    symbols = sorted(x.free_symbols | y.free_symbols, key=str)
    rng = random.Random(0)
    for _ in range(2):
        point = {s: sympy.Rational(rng.randint(11, 97), rng.randint(3, 13)) for s in symbols}
        try:
            a, b = complex(x.subs(point).evalf(30)), complex(y.subs(point).evalf(30))
        except (TypeError, ValueError, ZeroDivisionError, AttributeError):
            return False
        if abs(a - b) <= 1e-3 * max(1.0, abs(a), abs(b)):
            return False
    return True


def _numbers_differ(x, y) -> bool:
    """True when two constants clearly differ: exact rationals that are not equal, or values
    (to 30 digits) of different sign, one zero and the other not, or more than 1e-6 apart
    relative to the larger; no absolute tolerance, so 6.6e-34 and -6.6e-34 differ."""
    import sympy

    if not (isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr)) or x.free_symbols or y.free_symbols:
        return False
    if isinstance(x, sympy.Rational) and isinstance(y, sympy.Rational):
        return x != y
    try:
        a, b = complex(x.evalf(30)), complex(y.evalf(30))
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError):
        return False
    if not all(map(math.isfinite, (a.real, a.imag, b.real, b.imag))):
        return False
    zero_x, zero_y = x.is_zero is True or a == 0, y.is_zero is True or b == 0
    if zero_x or zero_y:  # zero equals only zero: differ where the other is provably not zero
        return (zero_x and y.is_zero is False) or (zero_y and x.is_zero is False)
    if a.imag == 0 == b.imag and (a.real > 0) != (b.real > 0):
        return True
    return abs(a - b) > 1e-6 * max(abs(a), abs(b))


def _rational_function(e) -> bool:
    """Built from symbols and rational numbers by +, * and integer powers alone (no floor,
    ceiling, mod, absolute value, trigonometric, logarithmic or other function)."""
    import sympy

    for node in sympy.preorder_traversal(e):
        if isinstance(node, sympy.Pow):
            if not node.exp.is_Integer:
                return False
        elif not isinstance(node, (sympy.Add, sympy.Mul, sympy.Symbol, sympy.Rational)):
            return False
    return True


def _same_rational_function(x, y) -> bool:
    """True when both are rational functions with rational coefficients that agree exactly
    at three random rational points: then they are the same function, except with a
    probability far below one in a million (Schwartz-Zippel). Anything else (floats, roots,
    pi) returns False and goes to the symbolic check."""
    import random

    import sympy

    if not (isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr)) or not (_rational_function(x) and _rational_function(y)):
        return False
    symbols = sorted(x.free_symbols | y.free_symbols, key=str)
    if not symbols:
        return False
    rng = random.Random(1)
    for _ in range(3):
        point = {s: sympy.Rational(rng.randint(-10**6, 10**6), rng.randint(1, 10**6)) for s in symbols}
        try:
            a, b = x.subs(point), y.subs(point)
        except (TypeError, ValueError, ZeroDivisionError):
            return False
        if not (isinstance(a, sympy.Rational) and isinstance(b, sympy.Rational)) or a != b:
            return False
    return True


def _is_name(expr) -> bool:
    """A bare name on the left of an equation: `x`, `y`, `f(x)`, or a tuple of them: `(x, y)`."""
    import sympy

    if isinstance(expr, sympy.Tuple):
        return len(expr) > 0 and all(_is_name(e) for e in expr)
    return isinstance(expr, (sympy.Symbol, sympy.core.function.AppliedUndef))


def _imaginary(g: list, a: list) -> tuple[list, list]:
    """`i` as the imaginary unit where it is the only name on both sides (math-verify reads
    it as a symbol: `i^{18}` would not be -1)."""
    import sympy

    exprs = [e for e in (g[0], a[0]) if isinstance(e, sympy.Basic)]
    names = {str(s) for e in exprs for s in e.free_symbols}
    if names != {"i"} or len(exprs) < 2:
        return g, a
    unit = {s: sympy.I for e in exprs for s in e.free_symbols}
    return [g[0].subs(unit)] + g[1:], [a[0].subs(unit)] + a[1:]


def compare(g: list, a: list) -> tuple[bool | None, str]:
    """Whole reference against whole answer. Equations are compared as equations (the same
    relation up to a non-zero factor), matrices entry by entry, `name = value` by its value;
    an answer that restates the question (`\\log_2 8 = 3`) must be a true equation."""
    import sympy

    g, a = _imaginary(g, a)
    ge, ae = g[0], a[0]
    eq_g, eq_a = isinstance(ge, sympy.Equality), isinstance(ae, sympy.Equality)
    if eq_g and eq_a:
        if not (ge.free_symbols or ae.free_symbols):  # `\\log_{10}(0.01) = -2`: the same statement, true
            if not _same(ae.lhs, ae.rhs):
                return False, "the answer's equation is false"
            return _same(ge.lhs, ae.lhs) and _same(ge.rhs, ae.rhs), "the same true equation"
        if _is_name(ge.lhs) and ge.lhs == ae.lhs:
            return _same(ge.rhs, ae.rhs), "the same name's values"
        if not all(isinstance(side, sympy.Expr) for side in (ge.lhs, ge.rhs, ae.lhs, ae.rhs)):
            return _same(g, a), "math-verify"
        dg, da = ge.lhs - ge.rhs, ae.lhs - ae.rhs
        if da == 0:
            return None, "the answer's equation is trivial"
        ratio = sympy.simplify(dg / da)
        ok = ratio.is_number and ratio != 0 and ratio.is_finite is not False
        return bool(ok), "equations compared as equations"
    if eq_g:
        if _is_name(ge.lhs):
            return _same(ge.rhs, ae), "the reference's value"
        if not ge.free_symbols:  # `\\log_{36}(216) = \\frac{3}{2}`: its value
            return _same(ge.rhs, ae), "the value of the reference's statement"
        return None, "the reference is an equation, the answer is not"
    if eq_a:
        if _is_name(ae.lhs):
            return _same(ge, ae.rhs), "the answer's value"
        if not ae.lhs.free_symbols and _same(ge, ae.rhs):
            if _same(ae.lhs, ae.rhs):
                return True, "a true restatement of the question"
            return False, "the answer restates the question with a false equation"
        return False, "the answer is an equation, the reference is not"
    mg, ma = isinstance(ge, sympy.MatrixBase), isinstance(ae, sympy.MatrixBase)
    if mg or ma:
        if not (mg and ma) or ge.shape != ae.shape:
            return False, "not the same matrix shape"
        return all(_same(x, y) for x, y in zip(ge, ae)), "matrices entry by entry"
    if _numbers_differ(ge, ae):
        return False, "different numbers"
    if _far_apart(ge, ae):
        return False, "numerically different"
    if _same_rational_function(ge, ae):
        return True, "the same rational function (exact at random points)"
    return _same(g, a), "math-verify"


def approx(exact: str, shown: str) -> tuple[bool | None, str]:
    """`exact \\approx shown`: true when `shown` is within half a unit of its last digit."""
    from selftrain.verifiers.math import plain_number, tolerance

    g, why = whole(exact)
    value = plain_number(shown)
    if g is None or value is None:
        return None, f"could not check the approximation {shown}: {why or 'not a number'}"
    try:
        x = complex(g[0].evalf(30))
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError):
        return None, f"could not evaluate {exact}"
    return abs(x - float(value)) <= float(tolerance(shown)), f"{shown} to the precision shown"


def judge(op: str, gold: str, answer: str) -> tuple[bool | None, str]:
    if op == "approx":
        return approx(gold, answer)
    g, why = whole(gold)
    if g is None:
        return None, f"could not read the whole reference: {why}"
    a, why = whole(answer)
    if a is None:
        return (False if why == "nothing parsed" else None), f"could not read the whole answer: {why}"
    return compare(g, a)


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own timeouts are off: ours are on
    import math_verify  # noqa: F401 - import before saying ready, so deadlines measure work only

    out = sys.stdout.fileno()
    send(out, "ready")
    while True:
        pair = receive(sys.stdin.fileno())
        if pair is None:
            return
        try:
            send(out, judge(*pair))
        except Exception as err:  # noqa: BLE001 - a verdict of None, with the reason
            send(out, (None, f"math-verify failed: {type(err).__name__}"))


if __name__ == "__main__":
    main()
