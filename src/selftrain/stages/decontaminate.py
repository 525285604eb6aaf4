"""The decontaminate stage: rows that overlap an evaluation set are dropped and listed, and a
person's review (`selftrain review RUN`) is applied: rows rejected dropped, edits used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import RunDir, fingerprint, read_jsonl, write_jsonl
from selftrain.data.decontamination import Match
from selftrain.data.review import apply_review, decisions, row_key
from selftrain.records import Problem
from selftrain.stages.context import Artifact, Rows, RunContext


def decontaminate(ctx: RunContext, group: str, rows: Rows | Artifact, fields: Sequence[str]) -> Rows | Artifact:
    """The rows of `rows` (a JSONL file) none of whose `fields` overlaps an evaluation set
    (`RunContext.contamination`) -> RUN/<group>/data.jsonl, the training data (`selftrain.runs`
    writes its dataset card beside it); the others, each with the test item it
    matches, -> RUN/<group>/contaminated.jsonl (group "": the run folder itself). Returns the
    clean rows, as what it was given."""
    guard, source = ctx.contamination, rows.path
    clean, dirty = ctx.path(group, "data.jsonl"), ctx.path(group, "contaminated.jsonl")
    taken = decisions(ctx.run.root)  # a person's review of this run, if any
    mine = dict(sorted((k, v) for k, v in taken.items() if k in {row_key(r) for r in read_jsonl(source)})) if taken else {}
    fp = fingerprint("decontaminate", rows.fp, list(fields), guard.fp, mine)

    def work() -> dict[str, Any]:
        kept, dropped, sources = [], [], Counter()
        for row in read_jsonl(source):
            texts = [row[f] for f in fields if isinstance(row.get(f), str)]
            match = next((m for t in texts if (m := guard.match(t))), None)
            if match is None:
                kept.append(row)
            else:
                sources[match.item.source] += 1
                dropped.append({"row": row, **_found(match)})
        reviewed, rejected, edited = apply_review(mine, kept)
        write_jsonl(clean, reviewed)
        write_jsonl(dirty, dropped)
        info = {"checked": len(kept) + len(dropped), "contaminated": len(dropped), "contaminated_by_source": dict(sources)}
        return {**info, **({"rejected_by_review": rejected, "edited_by_review": edited} if mine else {})}

    ctx.stage(f"{group}/decontaminate" if group else "decontaminate", fp, work,
              outputs={"data": clean, "contaminated": dirty})
    if isinstance(rows, Artifact):
        return Artifact.of(fp, "data", data=clean, contaminated=dirty)
    return Rows(fp, lambda: [{"prompt": r["prompt"], "completion": r["completion"]} for r in read_jsonl(clean)], clean,
                (ctx.relative(clean),))


def training_data(run: RunDir, group: str = "") -> list[dict[str, Any]] | None:
    """The rows the decontaminate stage of `group` kept (RUN/<group>/data.jsonl; None: it has
    not run): what reports read."""
    stage = f"{group}/decontaminate" if group else "decontaminate"
    path = run.output(stage, "data") or run.path(group, "data.jsonl")
    return read_jsonl(path) if run.record(stage) is not None and path.is_file() else None


def decontaminate_problems(ctx: RunContext, group: str, problems: Sequence[Problem]) -> list[Problem]:
    """The problems (a pool to sample on) whose prompts overlap no evaluation item; the others
    -> RUN/<group>/contaminated.jsonl, each with the test item it matches."""
    guard = ctx.contamination
    if not guard.enabled:
        return list(problems)
    dirty = ctx.path(group, "contaminated.jsonl")
    fp = fingerprint("decontaminate-problems", [p.to_json() for p in problems], guard.fp)

    def work() -> dict[str, Any]:
        found = [(p, m) for p in problems if (m := guard.match(p.prompt))]
        write_jsonl(dirty, ({"problem": p.to_json(), **_found(m)} for p, m in found))
        return {"checked": len(problems), "contaminated": len(found)}

    ctx.stage(f"{group}/decontaminate", fp, work, outputs={"contaminated": dirty})
    dropped = {r["problem"]["id"] for r in read_jsonl(dirty)}
    return [p for p in problems if p.id not in dropped]


def _found(match: Match) -> dict[str, Any]:
    """The test item a row overlaps and the shared words, as listed in contaminated.jsonl."""
    item = match.item
    return {"test_item": {"source": item.source, "id": item.id, "text": item.text}, "overlap": match.overlap}
