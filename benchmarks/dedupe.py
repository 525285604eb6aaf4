"""Dedupe at scale: rows per second, memory, and recall of planted duplicates.

    python benchmarks/dedupe.py [--rows 200000] [--data ../shared/data]

Builds `--rows` distinct rows from real text (three random sentences of GSM8K questions
each), then plants 5% exact duplicates (case and spacing changed) and 5% near-duplicates
(one word dropped, or two neighbouring words swapped), and runs `selftrain.data.dedupe` on all
of them. Prints rows/s for exact-only and for exact + near (MinHash LSH, threshold 0.8),
the peak memory of the process, and the recall of the planted duplicates; on a sample of
planted near-duplicate pairs, their exact Jaccard similarity (word 3-grams) says how many
were findable at the threshold, and recall is reported against those too. Rows removed
that were not planted are checked against exact Jaccard as well.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import time
from pathlib import Path

from selftrain.data.dedupe import find_duplicates, shingles


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def build(n: int, data: Path, seed: int = 0) -> tuple[list[str], dict[int, tuple[str, str]]]:
    """`n` rows; the planted ones by index, each with the text it copies and its kind."""
    questions = [json.loads(line)["question"] for f in ("train.jsonl", "test.jsonl") for line in (data / "gsm8k" / f).open()]
    sentences = sorted({s.strip() for q in questions for s in re.split(r"(?<=[.?!])\s+", q) if len(s.split()) >= 5})
    rng = random.Random(seed)
    base = [" ".join(rng.sample(sentences, 3)) for _ in range(int(n * 0.9))]
    keyed = [(float(i), text, None, "") for i, text in enumerate(base)]
    for _ in range(n - len(base)):
        k = rng.randrange(len(base))
        words = base[k].split()
        if rng.random() < 0.5:
            text, kind = (base[k].upper() if rng.random() < 0.5 else "  ".join(words)), "exact"
        else:
            i = rng.randrange(len(words) - 1)
            if rng.random() < 0.5:
                del words[i]
            else:
                words[i], words[i + 1] = words[i + 1], words[i]
            text, kind = " ".join(words), "near"
        keyed.append((rng.uniform(k + 0.5, len(base)), text, base[k], kind))  # after the row it copies
    keyed.sort(key=lambda r: r[0])
    rows = [text for _, text, _, _ in keyed]
    planted = {i: (original, kind) for i, (_, _, original, kind) in enumerate(keyed) if original is not None}
    return rows, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()
    t = time.perf_counter()
    rows, planted = build(args.rows, args.data)
    print(f"{len(rows)} rows built in {time.perf_counter() - t:.0f} s: {sum(k == 'exact' for _, k in planted.values())} exact "
          f"and {sum(k == 'near' for _, k in planted.values())} near duplicates planted")
    t = time.perf_counter()
    exact = find_duplicates(rows, near=False)
    print(f"exact only: {len(rows) / (time.perf_counter() - t):,.0f} rows/s, {len(exact)} removed")
    t = time.perf_counter()
    found = find_duplicates(rows, threshold=args.threshold)
    dt = time.perf_counter() - t
    print(f"exact + near (MinHash LSH, 128 permutations, threshold {args.threshold}): {len(rows) / dt:,.0f} rows/s "
          f"({dt:.0f} s), {len(found)} removed; peak memory of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    removed = {d.index: d for d in found}
    for kind in ("exact", "near"):
        ids = [i for i, (_, k) in planted.items() if k == kind]
        print(f"planted {kind}: {sum(i in removed for i in ids)}/{len(ids)} found")
    rng = random.Random(1)
    near = [i for i, (_, k) in planted.items() if k == "near"]
    sample = rng.sample(near, min(2000, len(near)))
    findable = [i for i in sample if jaccard(rows[i], planted[i][0]) >= args.threshold]
    print(f"sample of {len(sample)} planted near-duplicates: {len(findable)} have exact Jaccard >= {args.threshold} with the "
          f"row they copy; found {sum(i in removed for i in findable)}/{len(findable)} of those, "
          f"{sum(i in removed for i in sample)}/{len(sample)} of all")
    extra = [d for d in found if d.index not in planted]
    real = sum(d.kind == "exact" or jaccard(rows[d.index], rows[d.of]) >= args.threshold for d in extra[:2000])
    print(f"removed but not planted: {len(extra)}; of the first {min(len(extra), 2000)}, {real} are duplicates by exact Jaccard")


if __name__ == "__main__":
    main()
