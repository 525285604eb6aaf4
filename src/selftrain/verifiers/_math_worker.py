"""A math-verify worker process: reads checks, writes verdicts.

A check is `("same", reference, answer)` (are the two equivalent?) or `("approx", exact,
shown)` (is the number `shown` within half a unit of its last digit of `exact`?).

Before parsing, the names math-verify would misread are renamed alike on both sides
(`names`): subscripted names (`E_1`, `C_{2}`, `\\omega_0`, `v_{\\max}`) and a capital letter
beside its small one (`Ax + a`). A parse must cover the whole text (`whole`). Values are
compared by `equal`: numbers exactly where both are exact, intervals endpoint by endpoint
and bracket by bracket, sets and tuples element by element, expressions with free symbols
at random points over all of them before any symbolic work.

Started by `selftrain.verifiers.math.MathVerifyPool` as `python -m selftrain.verifiers._math_worker`;
it speaks `selftrain.plugins.Worker`'s framing and replies: "ready", then ("ok", verdict) or
("raised", "math-verify failed: <error>") per check.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections import Counter
from functools import lru_cache

from selftrain.plugins import receive, send

_COMMAND = re.compile(r"\\[a-zA-Z]+")
_GREEK = ("alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|rho|sigma|tau|"
          "upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|Lambda|Xi|Pi|Sigma|Phi|Psi|Omega")
_TOKEN = re.compile(
    r"(?P<kept>\\(?:text|textbf|mathrm|mbox|operatorname|mathbf|begin|end)\s*\{[^{}]*\})"
    rf"|(?P<sub>(?:\\(?:{_GREEK})(?![a-zA-Z])|[A-Za-z])_(?:\{{\s*(?:[A-Za-z0-9]+|\\[A-Za-z]+)\s*\}}|[A-Za-z0-9]))"
    r"|(?P<command>\\[A-Za-z]+)|(?P<letter>[A-Za-z])")
_PLACEHOLDER = "z_{{q{}q}}"
_TEXT = re.compile(r"\\(?:text|mbox|mathrm|operatorname)")


def names(*texts: str) -> dict[str, str]:
    r"""The names to rename in `texts` (one pair, alike on both sides), each to a placeholder
    math-verify reads as one symbol: every subscripted name (`E_1` would be Euler's number,
    `v_{\max}` no symbol at all, `\omega_0 t` half read), and a capital letter written
    beside its small one in one text (math-verify reads `A` as `a`). `E_{1}` and `E_1` are
    one name.

    >>> names("\\frac{1}{3} E_1 + \\frac{2}{3} E_{2}", "E_2 + v_{\\max}")
    {'E_1': 'z_{q0q}', 'E_2': 'z_{q1q}', 'v_\\max': 'z_{q2q}'}
    >>> names("y = Ax + a", "y = ax + A"), names("\\log_2 x + \\text{A}_1 + e^{x}")
    ({'A': 'z_{q0q}'}, {})
    """
    out: dict[str, str] = {}
    for text in texts:
        letters = {m.group("letter") for m in _TOKEN.finditer(text) if m.group("letter")}
        for m in _TOKEN.finditer(text):
            key = _key(m)
            if key and (m.group("sub") or (key.isupper() and key.lower() in letters and key not in "EI")):
                out.setdefault(key, _PLACEHOLDER.format(len(out)))
    return out


def _key(m: re.Match) -> str | None:
    if m.group("sub"):
        return re.sub(r"[{}\s]", "", m.group("sub"))
    return m.group("letter")


def rename(text: str, mapping: dict[str, str]) -> str:
    r"""`text` with the names of `mapping` replaced, outside `\\text{}` and commands.

    >>> rename("\\frac{1}{3} E_1 + A a", {"E_1": "z_{q0q}", "A": "z_{q1q}"})
    '\\frac{1}{3} z_{q0q} + z_{q1q} a'
    """
    if not mapping:
        return text

    def one(m: re.Match) -> str:
        key = _key(m)
        return mapping[key] if key in mapping else m.group()

    return _TOKEN.sub(one, text)


def _restore(message: str, mapping: dict[str, str]) -> str:
    for name, placeholder in mapping.items():
        message = message.replace(placeholder, name)
    return message


def _content(text: str, decimals: bool = True) -> Counter:
    """The digits and letters of `text` outside LaTeX commands: what a parse must keep.
    Without `decimals`, decimal numbers are left out (math-verify rewrites 0.5 as 1/2)."""
    if not decimals:
        text = re.sub(r"\d*\.\d+", " ", text)
    return Counter(c for c in _COMMAND.sub(" ", text) if c.isalnum())


@lru_cache(maxsize=8192)
def whole(text: str) -> tuple[list | None, str]:
    """math-verify's parse of the whole of `text`, or (None, why): nothing parsed, or a
    partial parse: digits or letters of the text dropped, a placeholder name (`names`) lost,
    or a value read from a part of the text because the whole did not parse (math-verify
    then tries the parts: `\\frac{1}{3} E_1 + \\frac{2}{3} E_2` read as 2/3). Where math-verify
    drops a letter as a unit (`\\omega_0 t`, `xy - cy = c`), the text is read again without
    its unit rule (unless it has words in `\\text{}`: those stay units, never symbols). Cached:
    the K samples of a problem share its reference."""
    parsed, why = _parse(text, units=True)
    if parsed is None and why.startswith("parsed only in part") and not _TEXT.search(text):
        again, _ = _parse(text, units=False)
        if again is not None:
            return again, ""
    return parsed, why


def _parse(text: str, units: bool) -> tuple[list | None, str]:
    from math_verify import LatexExtractionConfig, parse

    config = LatexExtractionConfig() if units else _no_units()
    parsed = parse("\\boxed{" + text + "}", extraction_config=[config], parsing_timeout=None)
    if not parsed:
        return None, "nothing parsed"
    missing = _content(text, decimals=False) - _content(parsed[-1])
    if missing:
        return None, f"parsed only in part ({parsed[-1]!r} of {text!r})"
    if not isinstance(parsed[0], str) and not _parses_whole(parsed[-1]):
        return None, f"parsed only in part ({parsed[0]} read from a part of {text!r})"
    lost = _names(text) - {c.lower() for c in str(parsed[0]) if c.isalpha()}
    placeholders = set(re.findall(r"z_\{q\d+q\}", text)) - set(re.findall(r"z_\{q\d+q\}", str(parsed[0])))
    if lost or placeholders:
        return None, f"parsed only in part ({parsed[0]} of {text!r}: {', '.join(sorted(lost | placeholders))} lost)"
    return parsed, ""


@lru_cache(maxsize=1)
def _no_units():
    from dataclasses import replace

    from math_verify import LatexExtractionConfig

    config = LatexExtractionConfig()
    return replace(config, normalization_config=replace(config.normalization_config, units=False))


def _parses_whole(normalized: str) -> bool:
    """Whether math-verify's parse of the whole normalized text succeeds (not only a part of
    it, nor only its last equation); the parse is cached inside math-verify, so this costs
    a lookup."""
    from math_verify.parser import get_last_eq, parse_latex_cached

    try:
        parse_latex_cached(normalized)
    except Exception:  # noqa: BLE001 - any failure of the whole is a partial parse
        return False
    if get_last_eq(normalized) != normalized:  # the parse may be of the last equation alone
        from latex2sympy2_extended.latex2sympy2 import latex2sympy

        try:
            latex2sympy(normalized, normalization_config=None)
        except Exception:  # noqa: BLE001
            return False
    return True


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


def _exact(x):
    """The exact rational value of a number written with decimals and fractions alone
    (`2.2900001`, `-0.3`, `\\frac{1}{2}`), else None: such numbers are compared exactly, as the
    verifier compares plain numbers, never to a rounding."""
    import sympy

    if not isinstance(x, sympy.Expr) or not x.is_number:
        return None
    for node in sympy.preorder_traversal(x):
        if isinstance(node, sympy.Pow):
            if not node.exp.is_Integer:
                return None
        elif not isinstance(node, (sympy.Add, sympy.Mul, sympy.Rational, sympy.Float)):
            return None
    try:
        value = x.xreplace({f: sympy.Rational(str(f)) for f in x.atoms(sympy.Float)})
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if isinstance(value, sympy.Rational) else None


def _as_set(value, other):
    """`value` as a set where it is one (an interval, a union, a finite set, the reals, the
    empty set), or a relation in one name (`1 \\le x \\le 3`) compared with an interval or
    union; else None."""
    import sympy

    if isinstance(value, sympy.Set):
        return value
    if (isinstance(other, (sympy.Interval, sympy.Union)) or other == sympy.S.Reals) and isinstance(value, sympy.Basic) and \
            not value.atoms(sympy.core.function.AppliedUndef):
        relation = isinstance(value, sympy.Rel) and not isinstance(value, (sympy.Eq, sympy.Ne)) or (
            isinstance(value, sympy.And) and all(isinstance(r, sympy.Rel) for r in value.args))
        if relation and len(value.free_symbols) == 1:
            try:
                return value.as_set()
            except Exception:  # noqa: BLE001 - not a set sympy can make
                return None
    return None


def _pieces(s) -> list | None:
    """A set as its pieces: intervals (with their brackets) and single elements; None for a
    set that is not a union of such pieces."""
    import sympy

    if s == sympy.S.Reals:
        return [sympy.Interval(-sympy.oo, sympy.oo)]
    if isinstance(s, sympy.Interval):
        return [s]
    if s is sympy.S.EmptySet:
        return []
    if isinstance(s, sympy.FiniteSet):
        return list(getattr(s, "_unsorted_args", s.args))
    if isinstance(s, sympy.Union):
        out = []
        for arg in s.args:
            piece = _pieces(arg)
            if piece is None:
                return None
            out += piece
        return out
    return None


def _same_set(x, y) -> bool:
    """Two sets alike piece by piece: as many intervals and elements, every interval's two
    endpoints equal (`equal`) and its brackets the same, every element matched once. An open
    interval against a pair (`(1, 2)` read both ways) is compared as the pair."""
    import sympy

    px, py = _pieces(x), _pieces(y)
    if px is None or py is None:
        return _same(x, y)
    if len(px) != len(py):
        pair = [p for p in (px, py) if len(p) == 1 and isinstance(p[0], sympy.Interval) and p[0].is_open]
        other = py if pair and pair[0] is px else px
        if pair and len(other) == 2 and isinstance(x if other is px else y, (sympy.FiniteSet, sympy.Tuple)):
            return all(equal(a, b) for a, b in zip((pair[0][0].start, pair[0][0].end), other))
        return False
    unused = list(py)
    for piece in px:
        match = next((i for i, other in enumerate(unused) if _same_piece(piece, other)), None)
        if match is None:
            return False
        unused.pop(match)
    return True


def _same_piece(a, b) -> bool:
    """Two pieces of sets alike: intervals by brackets and endpoints, elements by `equal`."""
    import sympy

    ia, ib = isinstance(a, sympy.Interval), isinstance(b, sympy.Interval)
    if ia and ib:
        return (a.left_open == b.left_open and a.right_open == b.right_open
                and equal(a.start, b.start) and equal(a.end, b.end))
    return not (ia or ib) and equal(a, b)


def equal(x, y) -> bool:
    """Two values alike: numbers written with decimals and fractions exactly; other constants
    by `_numbers_differ`; sets and intervals piece by piece (`_same_set`); tuples element by
    element; expressions with free symbols at random points over every one of them
    (`_far_apart`, exactly for rational functions) before math-verify's symbolic check."""
    import sympy

    try:
        if x == y:
            return True
    except Exception:  # noqa: BLE001 - a comparison sympy cannot make
        pass
    sx, sy = _as_set(x, y), _as_set(y, x)
    if sx is not None and sy is not None and _pieces(sx) is not None and _pieces(sy) is not None:
        return _same_set(sx, sy)
    if isinstance(x, sympy.Tuple) and isinstance(y, sympy.Tuple):
        return len(x) == len(y) and all(equal(p, q) for p, q in zip(x, y))
    if isinstance(x, sympy.Expr) and isinstance(y, sympy.Expr):
        ex, ey = _exact(x), _exact(y)
        if ex is not None and ey is not None:
            return ex == ey
        if _numbers_differ(x, y) or _far_apart(x, y):
            return False
        if _same_rational_function(x, y):
            return True
    return _same(x, y)


def _solved(implicit, name, value) -> bool:
    """An equation (`xy - cy = c`) that solved for `name` has exactly one solution, and it
    equals `value` (`c / (x - c)`)."""
    import sympy

    if not isinstance(name, sympy.Symbol) or name not in implicit.free_symbols:
        return False
    try:
        solutions = sympy.solve(implicit.lhs - implicit.rhs, name)
    except Exception:  # noqa: BLE001 - sympy cannot solve it: not decided here
        return False
    return len(solutions) == 1 and equal(solutions[0], value)


def compare(g: list, a: list) -> tuple[bool | None, str]:
    """Whole reference against whole answer. Equations are compared as equations (the same
    relation up to a non-zero factor), matrices entry by entry, `name = value` by its value;
    an answer that restates the question (`\\log_2 8 = 3`) must be a true equation. Where
    neither side parses to math (only math-verify's text), other text is not judged."""
    import sympy

    if isinstance(g[0], str) and isinstance(a[0], str):  # neither side read as math: only the same text is right
        return (True, "the same text") if _same(g, a) else (None, "neither side could be read as math")
    g, a = _imaginary(g, a)
    ge, ae = g[0], a[0]
    eq_g, eq_a = isinstance(ge, sympy.Equality), isinstance(ae, sympy.Equality)
    if eq_g and eq_a:
        if not (ge.free_symbols or ae.free_symbols):  # `\\log_{10}(0.01) = -2`: the same statement, true
            if not _same(ae.lhs, ae.rhs):
                return False, "the answer's equation is false"
            return equal(ge.lhs, ae.lhs) and equal(ge.rhs, ae.rhs), "the same true equation"
        if _is_name(ge.lhs) and ge.lhs == ae.lhs:
            return equal(ge.rhs, ae.rhs), "the same name's values"
        if not all(isinstance(side, sympy.Expr) for side in (ge.lhs, ge.rhs, ae.lhs, ae.rhs)):
            return _same(g, a), "math-verify"
        dg, da = ge.lhs - ge.rhs, ae.lhs - ae.rhs
        if da == 0:
            return None, "the answer's equation is trivial"
        ratio = sympy.simplify(dg / da)
        if ratio.is_number and ratio != 0 and ratio.is_finite is not False:
            return True, "equations compared as equations"
        if (_is_name(ge.lhs) and _solved(ae, ge.lhs, ge.rhs)) or (_is_name(ae.lhs) and _solved(ge, ae.lhs, ae.rhs)):
            return True, "the equation solved for its name"
        return False, "equations compared as equations"
    if eq_g:
        if _is_name(ge.lhs):
            return equal(ge.rhs, ae), "the reference's value"
        if not ge.free_symbols:  # `\\log_{36}(216) = \\frac{3}{2}`: its value
            return equal(ge.rhs, ae), "the value of the reference's statement"
        return None, "the reference is an equation, the answer is not"
    if eq_a:
        if _is_name(ae.lhs):
            return equal(ge, ae.rhs), "the answer's value"
        if not ae.lhs.free_symbols and equal(ge, ae.rhs):
            if equal(ae.lhs, ae.rhs):
                return True, "a true restatement of the question"
            return False, "the answer restates the question with a false equation"
        return False, "the answer is an equation, the reference is not"
    mg, ma = isinstance(ge, sympy.MatrixBase), isinstance(ae, sympy.MatrixBase)
    if mg or ma:
        if not (mg and ma) or ge.shape != ae.shape:
            return False, "not the same matrix shape"
        return all(equal(x, y) for x, y in zip(ge, ae)), "matrices entry by entry"
    if any(isinstance(v, (sympy.Set, sympy.Tuple)) for v in (ge, ae)):
        return equal(ge, ae), "sets, intervals and tuples part by part"
    if _exact(ge) is not None and _exact(ae) is not None:
        return _exact(ge) == _exact(ae), "numbers"
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
    """One check, its names renamed alike on both sides first (`names`)."""
    mapping = names(gold, answer) if op == "same" else names(gold)
    gold, answer = rename(gold, mapping), rename(answer, mapping) if op == "same" else answer
    if op == "approx":
        verdict, why = approx(gold, answer)
        return verdict, _restore(why, mapping)
    g, why = whole(gold)
    if g is None:
        return None, _restore(f"could not read the whole reference: {why}", mapping)
    a, why = whole(answer)
    if a is None:
        return (False if why == "nothing parsed" else None), _restore(f"could not read the whole answer: {why}", mapping)
    verdict, why = compare(g, a)
    return verdict, _restore(why, mapping)


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own timeouts are off: ours are on
    import math_verify  # noqa: F401 - import before saying ready, so deadlines measure work only

    out = sys.stdout.fileno()
    send(out, ("ready", None))
    while True:
        pair = receive(sys.stdin.fileno())
        if pair is None:
            return
        try:
            send(out, ("ok", judge(*pair)))
        except Exception as err:  # noqa: BLE001 - a verdict of None, with the reason
            send(out, ("raised", f"math-verify failed: {type(err).__name__}"))


if __name__ == "__main__":
    main()
