"""Stages that only the own-problems method uses (`methods.own_problems`): the model proposes
problems (`propose`), the task's oracle computes their answers and the unfit are dropped with
their reasons (`ground_truth`), and the band keeps the barely solvable (`band`); the
proposer's own training rows (`proposer_rows`)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from selftrain.artifacts import describe, fingerprint, read_jsonl, write_jsonl
from selftrain.records import Problem, SamplingParams
from selftrain.stages.context import Artifact, Rows, RunContext
from selftrain.stages.generate import load_samples
from selftrain.stages.score import load_scores
from selftrain.stages.train import made_rows


def separator(examples: Sequence[str]) -> str:
    """What separates written problems: a line break, or a blank line when a problem has
    several lines (a question and its expression; a program and its input)."""
    return "\n\n" if any("\n" in e for e in examples) else "\n"


def proposal_requests(examples: Sequence[str], n: int, shots: int, seed: int) -> list[str]:
    """`n` proposer prompts: `shots` examples drawn at random, each followed by the separator
    (`separator`), the next problem left for the model.

    >>> proposal_requests(["1+2=", "3+4=", "5+6="], 2, 1, 0)
    ['3+4=\\n', '3+4=\\n']
    >>> proposal_requests(["Q: 1?\\nE: 1"], 1, 1, 0)
    ['Q: 1?\\nE: 1\\n\\n']
    """
    rng = random.Random(seed)
    pool, sep = list(examples), separator(examples)
    return ["".join(e.strip("\n") + sep for e in rng.sample(pool, min(shots, len(pool)))) for _ in range(n)]


def first_written(completion: str, sep: str = "\n") -> str:
    """What the proposer wrote: its completion up to the first separator.

    >>> first_written(" 7430+5800=\\n1+1="), first_written("Q: 2?\\nE: 2\\n\\nQ: 3?", "\\n\\n")
    ('7430+5800=', 'Q: 2?\\nE: 2')
    """
    return completion.strip("\n ").split(sep)[0].strip()


def propose(ctx: RunContext, group: str, model: Artifact, seeds: Sequence[str], kept: Artifact | None, n: int, shots: int,
            params: SamplingParams) -> Artifact:
    """`model` writes `n` problems, each request showing `shots` examples (the problems the
    last band kept, or the seed problems until one has) -> RUN/<group>/proposed.jsonl: one
    row per request, `{id, request, written}` (the artifact's `proposed`)."""
    out = ctx.path(group, "proposed.jsonl")
    seed = ctx.seed(f"{group}/propose")
    fp = fingerprint("propose", model.fp, list(seeds), kept.fp if kept is not None else None, n, shots, params, seed,
                     describe(proposal_requests), describe(first_written))

    def work() -> dict[str, Any]:
        shown = [r["written"] for r in read_jsonl(kept["kept"])] if kept is not None else []
        source = "kept" if len(shown) >= shots else "seeds"
        requests = proposal_requests(shown if source == "kept" else seeds, n, shots, seed)
        sep = separator(seeds)
        written = [first_written(c, sep) for c in ctx.sampler(model).generate(requests, params, seed)]
        write_jsonl(out, ({"id": f"{group}-{i}", "request": r, "written": w} for i, (r, w) in enumerate(zip(requests, written))))
        return {"model": ctx.relative(model.path), "requested": n, "examples": source, "empty": sum(not w for w in written)}

    ctx.stage(f"{group}/propose", fp, work, outputs={"proposed": out})
    return Artifact.of(fp, "proposed", proposed=out)


def oracle_answers(ctx: RunContext, items: list[tuple[str, str]], timeout: float) -> list[tuple[str, Any]]:
    """The task's oracle over (written, id) pairs: per item ("ok", {"problem"|"not"|"garbage": ...})
    or ("raised" / "timeout" / "died", detail). A task that a fresh process can load (a
    built-in, an import path, an entry point) runs its oracle in a worker process with a
    deadline per batch (`selftrain.plugins.Guarded`: a hang or a crash costs its own items
    only); one registered in this process only runs it here, each item guarded."""
    from selftrain.plugins import Guarded
    from selftrain.tasks import TASKS, oracle_batches

    name, settings = ctx.task_spec
    if TASKS.local_only(name):
        batch = oracle_batches(name, settings)
        out: list[tuple[str, Any]] = []
        for item in items:
            try:
                out.append(("ok", batch([item])[0]))
            except Exception as err:  # noqa: BLE001 - the oracle failed on this item
                out.append(("raised", f"{type(err).__name__}: {err}"))
        return out
    guarded = Guarded("selftrain.tasks:oracle_batches", "the task's oracle", timeout, 256, args=(name, settings))
    try:
        return guarded(items)
    finally:
        guarded.close()


def _dropped(kind: str, detail: Any) -> str | None:
    """Why an oracle's answer to one item is no problem (None: it is one)."""
    if kind == "ok":
        if "problem" in detail:
            return None
        return f"not a problem: {detail['not']}" if "not" in detail else f"the oracle returned {detail['garbage']}"
    if kind == "timeout":
        return f"the oracle timed out after {detail:g} s"
    if kind == "shape":
        return f"the oracle returned {detail} items"
    return f"the oracle raised {detail}" if kind == "raised" else f"the oracle's process died (exit {detail})"


def ground_truth(ctx: RunContext, group: str, proposed: Artifact, seeds: Sequence[str], earlier: Sequence[Artifact],
                 near: float = 0.9, timeout: float = 30.0) -> Artifact:
    """Each proposed problem's answer from the task's oracle (`Task.oracle`: computed, never
    voted), and the proposals that are dropped, each with its reason: not a problem of the
    task (the oracle's reason: malformed, out of bounds), the oracle failed on it (raised, hung,
    returned garbage), a duplicate (of a seed, of an earlier iteration's problem, or of one
    before it: exactly, or as MinHash near-duplicates at Jaccard `near`), contaminated (it
    overlaps an evaluation item: `RunContext.contamination`) -> RUN/<group>/problems.jsonl
    (`problems`, Problems with the oracle's answers) and problems.rejected.jsonl (`rejected`).
    The record counts each and describes what was written (valid share, lengths, levels)."""
    from selftrain.data.dedupe import find_duplicates

    out, dropped = ctx.path(group, "problems.jsonl"), ctx.path(group, "problems.rejected.jsonl")
    guard = ctx.contamination
    fp = fingerprint("ground-truth", proposed.fp, list(seeds), [e.fp for e in earlier], near, guard.fp, ctx.task_spec,
                     describe(type(ctx.task)), describe(_dropped))

    def work() -> dict[str, Any]:
        rows = read_jsonl(proposed["proposed"])
        answers = oracle_answers(ctx, [(r["written"], r["id"]) for r in rows], timeout)
        before = list(seeds) + [r["meta"]["written"] for e in earlier for r in read_jsonl(e["problems"])]
        duplicate = {d.index - len(before): d for d in find_duplicates(before + [r["written"] for r in rows], near)
                     if d.index >= len(before)}
        kept, rejected, reasons = [], [], Counter()
        for i, (row, (kind, detail)) in enumerate(zip(rows, answers)):
            why = "empty" if not row["written"] else _dropped(kind, detail)
            if why is None and i in duplicate:
                d = duplicate[i]
                why = f"{d.kind} duplicate of {'a seed or an earlier problem' if d.of < len(before) else rows[d.of - len(before)]['id']}"
            problem = Problem.from_json(detail["problem"]) if why is None else None
            if problem is not None and (match := guard.match(problem.prompt)) is not None:
                why = f"contaminated: overlaps {match.item.source} item {match.item.id}"
            if why is not None:
                reasons[why.split(":")[0].split(" of ")[0]] += 1
                rejected.append({**row, "reason": why})
                continue
            kept.append(Problem(problem.id, problem.prompt, problem.answer, None, problem.bucket,
                                {**problem.meta, "written": row["written"]}))
        write_jsonl(out, (p.to_json() for p in kept))
        write_jsonl(dropped, rejected)
        levels = Counter(str(ctx.task.level(p)) for p in kept) if kept and _has_levels(ctx, kept[0]) else Counter()
        return {"written": len(rows), "valid": len(kept), "valid_share": round(len(kept) / max(len(rows), 1), 5),
                "dropped": dict(sorted(reasons.items())), "distinct_written": len({r["written"] for r in rows}),
                "duplicate_share": round(sum(v for k, v in reasons.items() if "duplicate" in k) / max(len(rows), 1), 5),
                "mean_length": round(sum(len(p.meta["written"]) for p in kept) / max(len(kept), 1), 2),
                **({"by_level": dict(sorted(levels.items(), key=lambda kv: int(kv[0])))} if levels else {})}

    ctx.stage(f"{group}/ground-truth", fp, work, outputs={"problems": out, "rejected": dropped})
    return Artifact.of(fp, "problems", problems=out, rejected=dropped)


def _has_levels(ctx: RunContext, problem: Problem) -> bool:
    try:
        return ctx.task.level(problem) is not None
    except (KeyError, TypeError, ValueError):
        return False


def pass_rates(samples: Sequence[Any], scores: Sequence[Any]) -> dict[str, float]:
    """Each problem's share of accepted samples.

    >>> from selftrain.records import Sample, Score
    >>> pass_rates([Sample("a", 0, "", ""), Sample("a", 1, "", ""), Sample("b", 0, "", "")],
    ...            [Score(1.0, ""), Score(0.0, ""), Score(None, "")])
    {'a': 0.5, 'b': 0.0}
    """
    seen: Counter = Counter()
    right: Counter = Counter()
    for s, sc in zip(samples, scores, strict=True):
        seen[s.problem_id] += 1
        right[s.problem_id] += sc.accepted
    return {pid: right[pid] / seen[pid] for pid in seen}


def in_band(rates: dict[str, float], low: float, high: float) -> list[str]:
    """The problems whose pass rate lies in [low, high], in order.

    >>> in_band({"a": 0.0, "b": 0.25, "c": 0.75, "d": 1.0}, 0.25, 0.75)
    ['b', 'c']
    """
    return [pid for pid, r in rates.items() if low <= r <= high]


def band(ctx: RunContext, group: str, scores: Artifact, problems: Artifact, low: float, high: float,
         control: bool = False) -> Artifact:
    """Each problem's pass rate over its samples (`scores`, beside them) -> the problems whose
    rate lies in [low, high], the barely solvable (`kept`); with `control`, as many problems
    drawn at random from all the valid ones instead (an equal-size random control) ->
    RUN/<group>/kept.jsonl. The record: the pass rates' histogram, how many in the band, how
    many kept, by level."""
    out = ctx.path(group, "kept.jsonl")
    seed = ctx.seed(f"{group}/band")
    fp = fingerprint("band", scores.fp, problems.fp, low, high, control, seed, describe(pass_rates), describe(in_band))

    def work() -> dict[str, Any]:
        everything = {r["id"]: Problem.from_json(r) for r in read_jsonl(problems["problems"])}
        rates = pass_rates(load_samples(scores["samples"]), load_scores(scores["scores"]))
        chosen = in_band(rates, low, high)
        if control:
            chosen = random.Random(seed).sample(sorted(rates), min(len(chosen), len(rates)))
        write_jsonl(out, ({**everything[pid].to_json(), "written": everything[pid].meta["written"], "pass_rate": rates[pid]}
                          for pid in chosen))
        histogram = Counter(f"{r:.2f}" for r in rates.values())
        levels = Counter(str(ctx.task.level(everything[pid])) for pid in chosen) if chosen and _has_levels(
            ctx, everything[chosen[0]]) else Counter()
        return {"problems": len(rates), "in_band": len(in_band(rates, low, high)), "kept": len(chosen),
                "kept_by": "random" if control else "band", "pass_rates": dict(sorted(histogram.items())),
                "unsolved": sum(r == 0 for r in rates.values()), "always_solved": sum(r == 1 for r in rates.values()),
                **({"kept_by_level": dict(sorted(levels.items(), key=lambda kv: int(kv[0])))} if levels else {})}

    ctx.stage(f"{group}/band", fp, work, outputs={"kept": out})
    return Artifact.of(fp, "kept", kept=out)


def kept_problems(kept: Artifact) -> list[Problem]:
    """The problems a band stage kept."""
    return [Problem.from_json({k: v for k, v in r.items() if k not in ("written", "pass_rate")}) for r in read_jsonl(kept["kept"])]


def load_problems(problems: Artifact) -> list[Problem]:
    """The problems the oracle answered (a ground-truth stage's `problems`)."""
    return [Problem.from_json(r) for r in read_jsonl(problems["problems"])]


def proposer_rows(ctx: RunContext, proposed: Artifact, kept: Artifact) -> Rows:
    """The proposer's training rows (expert iteration on the proposer): each request that led
    to a kept problem, and that problem as the model wrote it."""
    proposals, chosen = proposed["proposed"], kept["kept"]

    def load() -> list[dict[str, str]]:
        ids = {r["id"] for r in read_jsonl(chosen)}
        return [{"prompt": r["request"], "completion": r["written"]} for r in read_jsonl(proposals) if r["id"] in ids]

    return made_rows(load, proposed, kept, sources=(ctx.relative(proposals) + " (kept)",))


def seed_rows(examples: Sequence[str], n: int, shots: int, seed: int) -> Rows:
    """The proposer's rows before any problem of its own: `n` requests of `shots` seed problems,
    each completed by another seed problem (step 0 teaches the model the proposer's format)."""

    def load() -> list[dict[str, str]]:
        rng = random.Random(seed)
        rows = []
        sep = separator(examples)
        for _ in range(n):
            chosen = rng.sample(list(examples), shots + 1)
            rows.append({"prompt": "".join(e.strip("\n") + sep for e in chosen[:shots]), "completion": chosen[shots]})
        return rows

    return made_rows(load, list(examples), n, shots, seed, sources=("seed problems (proposer format)",))
