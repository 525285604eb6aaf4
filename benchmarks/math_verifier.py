"""Math verifier on real data: gold against gold, perturbed answers, judgements per second.

    python benchmarks/math_verifier.py [--data ../shared/data] [--long 200] [--sets gsm8k-test,math500,gsm8k-train]
    pip download math-verify==0.9.0 --no-binary :all: --no-deps -d /tmp/mv && tar xzf /tmp/mv/*.tar.gz -C /tmp/mv
    python benchmarks/math_verifier.py --math-verify-tests /tmp/mv/math_verify-0.9.0/tests

Prints, for GSM8K test and train (solutions against their final answers) and MATH-500
(solutions against `answer`): gold accepted / rejected / unjudged (the worked solution, and
the reference in plain text: "The answer is ..."), the reference's own text accepted, and
for every perturbation kind of `selftrain.verifiers.audit` how many wrong answers were
rejected, accepted (false accepts) or left unjudged, with examples of each failure class,
and math-verify's exceptions counted. With `--math-verify-tests`, also math-verify's own
labelled test pairs (olympiad answers from NuminaMath and OpenThoughts among them: every
`(gold, pred, expected)` of its tests' parametrize lists): pairs labelled right and wrong
accepted / rejected / unjudged, and the audit on their gold answers. Then judgements per second on
MATH-500 solutions and perturbed answers (a fresh verifier each round, workers started:
most gold answers are the reference's own text, settled before any parse) and on `--long`
long expressions
(`long_expressions`: references of ~200-250 characters, 4 distinct answers each, as an
E-step makes them); the right and wrong verdicts are counted too.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from selftrain.records import Problem
from selftrain.verifiers.audit import audit, perturbations
from selftrain.verifiers.math import MathVerifier, extract_answer


def long_expressions(n: int, seed: int = 0, per_reference: int = 4) -> tuple[list[Problem], list[str], list[bool]]:
    """`n` judgements as an E-step makes them: `per_reference` distinct answers to each
    reference, a random polynomial in x and y of degree 6 written expanded; half the answers
    are the factored form (right, in several orders), half change one coefficient (wrong)."""
    import sympy

    x, y = sympy.symbols("x y")
    rng = random.Random(seed)
    problems, completions, right = [], [], []
    for i in range(n // per_reference):
        factors = [rng.randint(1, 5) * x + rng.randint(-5, 5) * y + rng.randint(-9, 9) for _ in range(3)]
        factors.append(x**3 - rng.randint(1, 5) * y)
        expanded = sympy.expand(sympy.Mul(*factors))
        for j in range(per_reference):
            problems.append(Problem(f"long-{i}", "", sympy.latex(expanded)))
            if j % 2 == 0:
                rng.shuffle(factors)
                completions.append("\\boxed{" + " ".join(f"\\left({sympy.latex(f)}\\right)" for f in factors) + "}")
                right.append(True)
            else:
                terms = list(expanded.as_ordered_terms())
                k = rng.randrange(len(terms))
                terms[k] = terms[k] * 2
                completions.append("\\boxed{" + sympy.latex(sympy.Add(*terms)) + "}")
                right.append(False)
    return problems, completions, right


def labelled_pairs(folder: Path) -> list[tuple[str, str, int]]:
    """Every literal `(gold, pred, expected)` in the `pytest.mark.parametrize` lists of
    math-verify's tests (`folder`), gold and pred strings, expected 0 or 1."""
    import ast

    out = []
    for path in sorted(folder.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2):
                continue
            names = ast.literal_eval(node.args[0]) if isinstance(node.args[0], ast.Constant) else ""
            if not str(names).replace(" ", "").startswith("gold,pred"):
                continue
            for element in getattr(node.args[1], "elts", []):
                try:
                    row = ast.literal_eval(element)
                except ValueError:
                    continue
                if isinstance(row[0], str) and isinstance(row[1], str) and row[2] in (0, 1, True, False):
                    out.append((row[0], row[1], int(row[2])))
    return out


def math_verify_set(folder: Path) -> tuple[list[Problem], list[str], list[int]]:
    """math-verify's labelled pairs as problems (the reference: the gold's last box, as
    math-verify reads it, else the gold, `$` dropped) and completions (a pred without a box
    boxed whole)."""
    problems, completions, labels = [], [], []
    for i, (gold, pred, expected) in enumerate(labelled_pairs(folder)):
        boxed, how = extract_answer(gold)
        problems.append(Problem(f"mv-{i}", "", boxed if how == "boxed" else gold.strip().strip("$").strip()))
        completions.append(pred if "\\boxed" in pred else "\\boxed{" + pred.strip().strip("$").strip() + "}")
        labels.append(expected)
    return problems, completions, labels


def throughput(name: str, problems, completions, rounds: int = 2) -> None:
    """Judgements per second of a fresh verifier (empty caches), its workers started first."""
    for _ in range(rounds):
        verifier = MathVerifier()
        verifier([Problem(str(i), "", "1") for i in range(verifier.pool.size)], ["\\boxed{x}"] * verifier.pool.size)
        verifier._cache.clear()  # the workers started: not part of the timing
        t = time.perf_counter()
        scores = verifier(problems, completions)
        dt = time.perf_counter() - t
        unjudged = sum(s.value is None for s in scores)
        print(f"{name}: {len(problems) / dt:.1f} judgements/s ({dt:.2f} s for {len(problems)}, "
              f"{verifier.pool.size} workers, {unjudged} unjudged)")
        verifier.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--long", type=int, default=200)
    ap.add_argument("--sets", default="gsm8k-test,math500,gsm8k-train")
    ap.add_argument("--math-verify-tests", type=Path, help="the tests/ folder of math-verify's source distribution")
    args = ap.parse_args()
    data = Path(args.data)

    def gsm8k(split: str):
        rows = [json.loads(line) for line in (data / "gsm8k" / f"{split}.jsonl").open()]
        return [Problem(str(i), r["question"], r["answer"].rsplit("####", 1)[1].strip()) for i, r in enumerate(rows)], \
            [r["answer"] for r in rows], "#### {}"

    math = [json.loads(line) for line in (data / "math500" / "test.jsonl").open()]
    math_p = [Problem(r["unique_id"], r["problem"], r["answer"]) for r in math]
    sets = {"gsm8k-test": lambda: gsm8k("test"), "gsm8k-train": lambda: gsm8k("train"),
            "math500": lambda: (math_p, [r["solution"] for r in math], "\\boxed{{{}}}")}

    verifier = MathVerifier()
    for name in filter(None, args.sets.split(",")):
        problems, completions, wrap = sets[name]()
        print(f"== {name}")
        t = time.perf_counter()
        report = audit(verifier, problems, completions, wrap)
        dt = time.perf_counter() - t
        print("\n".join(report.lines()))
        plain = verifier(problems, [f"The answer is {p.answer}." for p in problems])
        print(f"gold in plain text: {sum(s.accepted for s in plain)}/{len(plain)} accepted, "
              f"{sum(s.value is None for s in plain)} unjudged")
        n = sum(report.gold.values()) + sum(report.itself.values()) + sum(sum(c.values()) for c in report.perturbed.values())
        print(f"audit: {n} judgements in {dt:.1f} s ({n / dt:.0f}/s, shared cache)")

    if args.math_verify_tests:
        problems, completions, labels = math_verify_set(args.math_verify_tests)
        print(f"== math-verify's labelled test pairs ({len(problems)})")
        scores = verifier(problems, completions)
        for label in (1, 0):
            got = [s for s, y in zip(scores, labels) if y == label]
            print(f"labelled {'right' if label else 'wrong'}: {sum(s.accepted for s in got)}/{len(got)} accepted, "
                  f"{sum(s.value == 0.0 for s in got)} rejected, {sum(s.value is None for s in got)} unjudged")
        for s, p, c, y in zip(scores, problems, completions, labels):
            if s.accepted and not y:
                print(f"  labelled wrong, ACCEPTED: reference {p.answer!r}, answer {c!r}: {s.reason}")
        golds = {p.answer: p for p in problems}
        gold_p = list(golds.values())
        print("\n".join(audit(verifier, gold_p, [f"\\boxed{{{p.answer}}}" for p in gold_p]).lines()))

    throughput("MATH-500 solutions", math_p, [r["solution"] for r in math])
    ps, cs = [], []
    for i, p in enumerate(math_p):
        for bad in perturbations(p.answer, math_p[(i + 1) % len(math_p)].answer).values():
            ps.append(p)
            cs.append(f"\\boxed{{{bad}}}")
    throughput("MATH-500 perturbed answers", ps, cs)
    problems, completions, right = long_expressions(args.long)
    verifier._cache.clear()
    scores = verifier(problems, completions)
    print(f"long expressions: right {sum(s.accepted for s, r in zip(scores, right) if r)}/{sum(right)} accepted, "
          f"wrong {sum(s.accepted for s, r in zip(scores, right) if not r)}/{len(right) - sum(right)} accepted, "
          f"{sum(s.value is None for s in scores)} unjudged")
    verifier.close()
    throughput("long expressions", problems, completions)


if __name__ == "__main__":
    main()
