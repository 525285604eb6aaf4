"""Duplicates and near-duplicates out of a pool or a dataset, at scale.

Exact duplicates: the same normalised text (lower case, punctuation and runs of spaces
dropped), found by hash. Near-duplicates: MinHash signatures of word 3-gram shingles and
locality-sensitive hashing (`datasketch`'s `MinHash.bulk` and `MinHashLSH`), so the cost
grows with the rows, not with the pairs (the ROUGE-L novelty filter of `selftrain.data.novelty`
is exact but compares pairs: right for Self-Instruct's thousands, not for millions). LSH
proposes earlier kept rows at a lower similarity (`threshold - 0.2`), so that few true
near-duplicates slip through its banding; a row is removed when one of them has an exact
Jaccard similarity (of the two shingle sets) at or above the threshold, so nothing below it
is ever removed. The first row of each cluster is kept, in file order, and the result is
deterministic (fixed MinHash seed).

    selftrain dedupe DATA.jsonl [--field text] [--threshold 0.8] [--out KEPT.jsonl]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed.

    >>> normalize("  Hello,  WORLD!\\n")
    'hello world'
    """
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def shingles(text: str, n: int = 3) -> set[bytes]:
    """Word n-grams of the normalised text (the whole text when shorter).

    >>> sorted(shingles("a b c d"))
    [b'a b c', b'b c d']
    """
    words = normalize(text).split()
    return {" ".join(words[i : i + n]).encode() for i in range(max(1, len(words) - n + 1))}


def row_text(row: dict[str, Any], fields: Sequence[str] | None) -> str:
    """The text a row is compared by: the named fields, or every string field, joined."""
    keys = fields or [k for k, v in row.items() if isinstance(v, str)]
    return "\n".join(str(row.get(k, "")) for k in keys)


@dataclass(frozen=True)
class Duplicate:
    index: int
    """The removed row (0-based, in file order)."""
    of: int
    """The kept row it duplicates."""
    kind: str
    """`exact` or `near`."""
    similarity: float
    """1.0 for exact; the Jaccard similarity of the two rows' shingles for near."""


def find_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, seed: int = 1,
                    near: bool = True, batch: int = 20_000) -> list[Duplicate]:
    """The duplicates among `texts`, each with the earlier kept text it repeats.

    >>> [(d.index, d.of, d.kind) for d in find_duplicates(["The cat sat on the mat today.", "the cat sat on the mat, today!",
    ...  "A different sentence about dogs and parks entirely.", "The cat sat on the mat today again."], threshold=0.5)]
    [(1, 0, 'exact'), (3, 0, 'near')]
    """
    from datasketch import MinHash, MinHashLSH

    found: list[Duplicate] = []
    first: dict[bytes, int] = {}
    candidates: list[int] = []
    for i, text in enumerate(texts):
        key = hashlib.blake2b(normalize(text).encode(), digest_size=16).digest()
        if key in first:
            found.append(Duplicate(i, first[key], "exact", 1.0))
        else:
            first[key] = i
            candidates.append(i)
    if not near:
        return found
    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=num_perm)
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        sets = [shingles(texts[i]) for i in chunk]
        for i, mine, sig in zip(chunk, sets, MinHash.bulk(sets, num_perm=num_perm, seed=seed)):
            best = None
            for other in sorted(int(k) for k in lsh.query(sig)):
                theirs = shingles(texts[other])
                similarity = len(mine & theirs) / len(mine | theirs)
                if similarity >= threshold:
                    best = Duplicate(i, other, "near", round(similarity, 4))
                    break
            if best is None:
                lsh.insert(str(i), sig)
            else:
                found.append(best)
    return sorted(found, key=lambda d: d.index)


def dedupe_file(path, out=None, fields: Sequence[str] | None = None, threshold: float = 0.8, near: bool = True) -> dict[str, Any]:
    """Write the kept rows of a JSONL file to `out` (default `<name>.dedup.jsonl`) and the
    removed ones, each with the row it duplicates, to `<out>.duplicates.jsonl`; the counts."""
    from pathlib import Path

    from selftrain.artifacts import read_rows, write_jsonl

    path = Path(path)
    rows = read_rows(path)
    dups = find_duplicates([row_text(r, fields) for r in rows], threshold=threshold, near=near)
    removed = {d.index for d in dups}
    out = Path(out) if out else path.with_name(path.name.removesuffix(".jsonl") + ".dedup.jsonl")
    write_jsonl(out, (r for i, r in enumerate(rows) if i not in removed))
    write_jsonl(out.with_name(out.name.removesuffix(".jsonl") + ".duplicates.jsonl"),
                ({"line": d.index + 1, "duplicate_of_line": d.of + 1, "kind": d.kind, "similarity": d.similarity,
                  "row": rows[d.index]} for d in dups))
    return {"rows": len(rows), "kept": len(rows) - len(removed), "exact": sum(d.kind == "exact" for d in dups),
            "near": sum(d.kind == "near" for d in dups), "out": str(out)}
