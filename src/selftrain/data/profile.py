"""What the data looks like: the first things a person checks for bias or collapse.

For each `data.jsonl` of a run: its size, the length distribution of its texts, the most
common first words of its instructions or prompts (the Self-Instruct paper's figure counts
verbs; the first word is its cheap stand-in), the distribution of judge scores, and the
rows per source (the model that wrote them). `selftrain.runs.publish` adds it to every
report.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from selftrain.artifacts import read_jsonl
from selftrain.report import kv_table, table

PROMPT_FIELDS = ("instruction", "question", "prompt")
ANSWER_FIELDS = ("output", "answer", "completion", "chosen")


def _first(row: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    return next((row[f] for f in fields if isinstance(row.get(f), str)), None)


def quantiles(values: list[int]) -> dict[str, int]:
    """Min, quartiles and max.

    >>> quantiles([1, 2, 3, 4, 100])
    {'min': 1, 'p25': 2, 'median': 3, 'p75': 4, 'max': 100}
    """
    if not values:
        return {}
    v = sorted(values)
    at = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]  # noqa: E731
    return {"min": v[0], "p25": at(0.25), "median": at(0.5), "p75": at(0.75), "max": v[-1]}


def profile(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sizes, lengths, first words, scores and sources of a dataset's rows.

    >>> p = profile([{"instruction": "Write a poem.", "output": "Roses", "lineage": {"model": "m", "score": 1.0}},
    ...              {"instruction": "write a story", "output": "Once", "lineage": {"model": "m", "score": 0.5}}])
    >>> p["first_words"], p["scores"], p["sources"]
    ({'write': 2}, {'0.5': 1, '1.0': 1}, {'m': 2})
    """
    prompts = [t for r in rows if (t := _first(r, PROMPT_FIELDS)) is not None]
    answers = [t for r in rows if (t := _first(r, ANSWER_FIELDS)) is not None]
    first = Counter(t.split()[0].lower().strip(".,:;!?\"'") for t in prompts if t.split())
    scores = Counter(str(r["lineage"]["score"]) for r in rows if isinstance(r.get("lineage"), dict)
                     and r["lineage"].get("score") is not None)
    sources = Counter(str(r["lineage"].get("model")) for r in rows if isinstance(r.get("lineage"), dict))
    return {"rows": len(rows), "prompt_chars": quantiles([len(t) for t in prompts]),
            "answer_chars": quantiles([len(t) for t in answers]), "distinct_prompts": len(set(prompts)),
            "first_words": dict(first.most_common(12)), "scores": dict(sorted(scores.items())), "sources": dict(sources)}


def profiles(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    root = Path(run_dir)
    return {str(p.parent.relative_to(root)) or ".": profile(read_jsonl(p)) for p in sorted(root.rglob("data.jsonl"))}


def render(found: dict[str, dict[str, Any]]) -> str:
    """The section of the report: one block per dataset."""
    if not found:
        return ""
    parts = ["<h2>What the data looks like</h2>"]
    for group, p in found.items():
        parts.append(f"<h3>{escape(group)}/data.jsonl: {p['rows']} rows, {p['distinct_prompts']} distinct prompts</h3>")
        lengths = [[name, *[q.get(k, "") for k in ("min", "p25", "median", "p75", "max")]]
                   for name, q in (("prompt characters", p["prompt_chars"]), ("answer characters", p["answer_chars"]))]
        parts.append(table(["", "min", "25%", "median", "75%", "max"], lengths))
        for title, counts in (("most common first words", p["first_words"]), ("judge or verifier scores", p["scores"]),
                              ("rows per source", p["sources"])):
            if counts:
                parts.append(f"<p>{escape(title)}</p>" + kv_table(list(counts.items())))
    return "\n".join(parts)
