"""Word problems of addition and subtraction, for ReST-EM on a small pretrained model.

    python examples/word_arithmetic.py runs/data/word-arithmetic [--seed 0]

Writes train.jsonl (problems with a one-line worked solution and its expression: the human data and the pool)
and test.jsonl (no solutions). The numbers have 1 or 2 digits (SmolLM2-135M-Instruct, few-shot, answers
7% of 2-3-digit ones right: too few to start from); each solution is
`a + b = c. The answer is c.` Used by configs/smollm2-rest-em.yaml.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Tom", "Ana", "Lee", "Maya", "Sam", "Ravi", "Lena", "Omar", "Ines", "Kofi"]
THINGS = ["apples", "stamps", "marbles", "books", "coins", "shells", "cards", "pencils"]
ADD = ["{n} has {a} {t}. {n} gets {b} more {t}. How many {t} does {n} have now?",
       "A box holds {a} {t} and another holds {b} {t}. How many {t} are there in all?"]
SUB = ["{n} has {a} {t}. {n} gives away {b} {t}. How many {t} does {n} have left?",
       "A shop had {a} {t} and sold {b} of them. How many {t} are left?"]


def problem(rng: random.Random, i: int) -> dict:
    digits = rng.choice([1, 2])
    a, b = rng.randint(10 ** (digits - 1), 10**digits - 1), rng.randint(1, 10**digits - 1)
    n, t = rng.choice(NAMES), rng.choice(THINGS)
    if rng.random() < 0.5:
        q, c, op = rng.choice(ADD).format(n=n, a=a, b=b, t=t), a + b, "+"
    else:
        a, b = max(a, b), min(a, b)
        q, c, op = rng.choice(SUB).format(n=n, a=a, b=b, t=t), a - b, "-"
    return {"id": f"w{i}", "question": q, "answer": str(c), "solution": f" {a} {op} {b} = {c}. The answer is {c}.",
            "digits": str(digits), "expression": f"{a} {op} {b}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--test", type=int, default=300)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = [problem(rng, i) for i in range(args.train + args.test)]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.jsonl", rows[: args.train]), ("test.jsonl", rows[args.train :])):
        (args.out / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    print(f"wrote {args.train} + {args.test} problems to {args.out}")


if __name__ == "__main__":
    main()
