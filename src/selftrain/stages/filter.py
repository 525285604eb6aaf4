"""The filter stage: a pure rule over the rows of earlier stages decides which rows go on (and
may reshape them); every dropped row is kept with its reason, for human review."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_jsonl
from selftrain.stages.context import Artifact, RunContext


@dataclass
class Filtered:
    """What a rule returns: the rows that go on, the rows dropped (each with a `reason`), and
    counts for the stage's record."""

    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def filter_rows(ctx: RunContext, group: str, name: str, sources: Sequence[Artifact], rule: Callable[..., Filtered],
                settings: dict[str, Any] | None = None) -> Artifact:
    """`rule(rows of each source..., **settings)` -> RUN/<group>/<name>.jsonl (the rows kept:
    `kept`) and RUN/<group>/<name>.rejected.jsonl (the rows dropped, with their reasons:
    `rejected`). The fingerprint holds the sources', the rule's (its code, callees included)
    and the settings."""
    settings = settings or {}
    out, dropped = ctx.path(group, f"{name}.jsonl"), ctx.path(group, f"{name}.rejected.jsonl")
    fp = fingerprint("filter", [s.fp for s in sources], describe(rule), settings)

    def work() -> dict[str, Any]:
        result = rule(*(read_jsonl(s.path) for s in sources), **settings)
        write_jsonl(out, result.kept)
        write_jsonl(dropped, result.rejected)
        return {"kept": len(result.kept), "dropped": len(result.rejected), **result.counts}

    ctx.stage(f"{group}/{name}" if group else name, fp, work, outputs={"kept": out, "rejected": dropped})
    return Artifact.of(fp, "kept", kept=out, rejected=dropped)
