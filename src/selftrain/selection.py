"""The select stage: which scored samples become training data.

ReST-EM keeps only samples the verifier accepts, at most N per problem (the paper caps
MATH at 10 per problem, so that easy problems do not swamp the data), with exact
duplicates removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from selftrain.records import Sample, Score


def select_correct(
    samples: Sequence[Sample],
    scores: Sequence[Score],
    max_per_problem: int | None,
    dedupe: bool = True,
) -> list[Sample]:
    """Accepted samples, duplicates removed, at most `max_per_problem` per problem.

    Keeps the first samples in their given order, so the choice is deterministic.

    >>> s = [Sample("p", i, "q", c) for i, c in enumerate(["a", "a", "b", "c", "x"])]
    >>> ok, bad = Score(1.0, "ok"), Score(0.0, "wrong")
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], max_per_problem=2)]
    ['a', 'b']
    >>> [x.completion for x in select_correct(s, [ok, ok, ok, ok, bad], None, dedupe=False)]
    ['a', 'a', 'b', 'c']
    """
    if len(samples) != len(scores):
        raise ValueError(f"{len(samples)} samples but {len(scores)} scores")
    if max_per_problem is not None and max_per_problem < 1:
        raise ValueError("max_per_problem must be >= 1 or None")
    kept: list[Sample] = []
    per_problem: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for sample, score in zip(samples, scores):
        if not score.accepted:
            continue
        key = (sample.problem_id, sample.completion)
        if dedupe and key in seen:
            continue
        n = per_problem.get(sample.problem_id, 0)
        if max_per_problem is not None and n >= max_per_problem:
            continue
        seen.add(key)
        per_problem[sample.problem_id] = n + 1
        kept.append(sample)
    return kept
