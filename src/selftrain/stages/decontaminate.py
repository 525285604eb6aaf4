"""The decontaminate stage: rows that overlap an evaluation set are dropped and listed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import fingerprint, read_jsonl, write_jsonl
from selftrain.stages.context import Artifact, Rows, RunContext


def decontaminate(ctx: RunContext, group: str, rows: Rows | Artifact, fields: Sequence[str]) -> Rows | Artifact:
    """The rows of `rows` (a JSONL file) none of whose `fields` overlaps an evaluation set
    (`RunContext.eval_items`) -> RUN/<group>/data.jsonl, the training data (`selftrain.runs`
    writes its dataset card beside it); the others, each with the test item it
    matches, -> RUN/<group>/contaminated.jsonl (group "": the run folder itself). Returns the
    clean rows, as what it was given."""
    cfg = ctx.cfg.decontaminate
    if not cfg.enabled:
        return rows
    source = rows.path
    clean, dirty = ctx.path(group, "data.jsonl"), ctx.path(group, "contaminated.jsonl")
    fp = fingerprint("decontaminate", rows.fp, list(fields), cfg.model_dump(), [(i.source, i.id, i.text) for i in ctx.eval_items])

    def work() -> dict[str, Any]:
        kept, dropped, sources = [], [], Counter()
        for row in read_jsonl(source):
            match = next((m for f in fields if isinstance(row.get(f), str) and (m := ctx.eval_index.match(row[f]))), None)
            if match is None:
                kept.append(row)
            else:
                sources[match.item.source] += 1
                dropped.append({"row": row, "test_item": {"source": match.item.source, "id": match.item.id,
                                                          "text": match.item.text}, "overlap": match.overlap})
        write_jsonl(clean, kept)
        write_jsonl(dirty, dropped)
        return {"checked": len(kept) + len(dropped), "contaminated": len(dropped), "contaminated_by_source": dict(sources)}

    ctx.stage(f"{group}/decontaminate" if group else "decontaminate", fp, work)
    if isinstance(rows, Artifact):
        return Artifact(clean, fp)
    return Rows(fp, lambda: [{"prompt": r["prompt"], "completion": r["completion"]} for r in read_jsonl(clean)], clean)
