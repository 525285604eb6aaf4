"""Math verifier on real data: gold against gold, perturbed answers, judgements per second.

    python benchmarks/math_verifier.py [--data ../shared/data] [--long 200]

Prints, for GSM8K (test solutions against their final answers) and MATH-500 (solutions
against `answer`): gold accepted / rejected / unjudged, and for every perturbation kind of
`selftrain.verifiers.audit` how many wrong answers were rejected, accepted (false accepts)
or left unjudged, with examples of each failure class. Then judgements per second on
MATH-500 (a fresh verifier each round, workers started) and on `--long` long expressions
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
from selftrain.verifiers.audit import audit
from selftrain.verifiers.math import MathVerifier


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


def throughput(name: str, problems, completions, rounds: int = 2) -> None:
    """Judgements per second of a fresh verifier (empty caches), its workers started first."""
    for _ in range(rounds):
        verifier = MathVerifier()
        verifier.pool.check([("1", "x")] * verifier.pool.size)  # start the workers: not part of the timing
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
    args = ap.parse_args()
    data = Path(args.data)
    gsm = [json.loads(line) for line in (data / "gsm8k" / "test.jsonl").open()]
    gsm_p = [Problem(str(i), r["question"], r["answer"].rsplit("####", 1)[1].strip()) for i, r in enumerate(gsm)]
    math = [json.loads(line) for line in (data / "math500" / "test.jsonl").open()]
    math_p = [Problem(r["unique_id"], r["problem"], r["answer"]) for r in math]

    verifier = MathVerifier()
    for name, problems, completions, wrap in (("GSM8K", gsm_p, [r["answer"] for r in gsm], "#### {}"),
                                              ("MATH-500", math_p, [r["solution"] for r in math], "\\boxed{{{}}}")):
        print(f"== {name}")
        print("\n".join(audit(verifier, problems, completions, wrap).lines()))

    throughput("MATH-500", math_p, [r["solution"] for r in math])
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
