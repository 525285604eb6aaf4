"""Evaluation math as small pure functions: unbiased pass@k, maj@k, accuracy by bucket."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c are correct (Chen et al. 2021).

    pass@k = 1 - C(n-c, k) / C(n, k), computed as a stable product.

    >>> pass_at_k(4, 0, 1), pass_at_k(4, 4, 1)
    (0.0, 1.0)
    >>> pass_at_k(4, 1, 1)   # one of four correct: a single draw succeeds 1/4 of the time
    0.25
    >>> round(pass_at_k(4, 1, 2), 6)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    >>> pass_at_k(4, 3, 2)   # any 2 of 4 contain a correct one when only 1 is wrong
    1.0
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most common non-None answer; ties go to the answer seen first. None if none.

    >>> majority_vote(["3", "4", "4", None])
    '4'
    >>> majority_vote(["5", "6"])   # a tie: the first seen wins
    '5'
    >>> majority_vote([None, None]) is None
    True
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool]) -> float:
    """1.0 if the majority answer among the samples is a correct one, else 0.0.

    `correct[i]` says whether sample i was accepted; the majority answer counts as correct
    when any sample giving that answer was accepted (the grader decides equivalence).

    >>> maj_at_k(["7", "8", "8"], [True, False, False])
    0.0
    >>> maj_at_k(["7", "7", "8"], [True, True, False])
    1.0
    """
    if len(answers) != len(correct):
        raise ValueError("answers and correct must have the same length")
    winner = majority_vote(answers)
    if winner is None:
        return 0.0
    return float(any(ok for a, ok in zip(answers, correct) if a == winner))


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def accuracy_by_bucket(buckets: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Accuracy per bucket, buckets in sorted order.

    >>> accuracy_by_bucket(["1", "2", "2", "1"], [True, False, True, True])
    {'1': 1.0, '2': 0.5}
    """
    groups: dict[str, list[bool]] = defaultdict(list)
    for b, ok in zip(buckets, correct, strict=True):
        groups[b].append(ok)
    return {b: mean(map(float, groups[b])) for b in sorted(groups, key=_bucket_key)}


def _bucket_key(b: str) -> tuple[int, int | str]:
    return (0, int(b)) if b.isdigit() else (1, b)
