"""The ask stage: requests sent to a teacher (a local model or an OpenAI-compatible endpoint),
one answer or one failed row each, all of them kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import RunDir, fingerprint, read_jsonl, write_jsonl
from selftrain.config import TeacherConfig
from selftrain.records import SamplingParams
from selftrain.samplers.base import Failed, generate_or_fail
from selftrain.stages.context import Artifact, RunContext


def ask(ctx: RunContext, group: str, name: str, teacher: TeacherConfig, requests: Sequence[dict[str, Any]],
        params: SamplingParams, seed: int) -> Artifact:
    """Each request's `prompt` sent to `teacher` -> RUN/<group>/<name>.jsonl: the request's
    fields and its `completion`, or, for a row a remote teacher failed after every retry,
    its `error` and `attempts` instead; no row is dropped, and the record counts the failed.
    The request's other fields travel with it, for the step that reads the answers."""
    out = ctx.path(group, f"{name}.jsonl")
    fp = fingerprint("ask", teacher.model_dump(), list(requests), params, seed)

    def work() -> dict[str, Any]:
        answers = generate_or_fail(ctx.sampler(teacher.model, teacher), [r["prompt"] for r in requests], params, seed)
        rows = [{**r, "completion": a} if not isinstance(a, Failed) else {**r, "error": a.error, "attempts": a.attempts}
                for r, a in zip(requests, answers)]
        write_jsonl(out, rows)
        return {"requests": len(rows), "failed": sum(isinstance(a, Failed) for a in answers)}

    ctx.stage(f"{group}/{name}" if group else name, fp, work, outputs={"answers": out})
    return Artifact.of(fp, "answers", answers=out)


def asked(run: RunDir, group: str, name: str) -> list[dict[str, Any]] | None:
    """The rows ask stage `name` of `group` wrote (None: it has not run): what reports read."""
    stage = f"{group}/{name}" if group else name
    path = run.output(stage, "answers") or run.path(group, f"{name}.jsonl")
    return read_jsonl(path) if run.record(stage) is not None and path.is_file() else None


def answered(answers: Artifact) -> list[dict[str, Any]]:
    """The rows of an ask stage that the teacher answered (those with a `completion`)."""
    return [r for r in read_jsonl(answers.path) if "completion" in r]
