"""The generate stage: K samples per prompt, journaled shard by shard."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selftrain import faults, ui
from selftrain.artifacts import ShardJournal, derive_seed, fingerprint, read_jsonl, write_jsonl
from selftrain.config import Generation, SamplerConfig
from selftrain.records import Problem, Sample, SamplingParams
from selftrain.samplers.base import Sampler, map_shards
from selftrain.stages.context import Artifact, RunContext, file_of


def sample_shards(
    sampler: Sampler,
    problems: Sequence[Problem],
    k: int,
    params: SamplingParams,
    out: Path,
    seed: int,
    shard_size: int = 2048,
    desc: str = "generate",
    key: str = "",
) -> list[Sample]:
    """K samples per problem into `out` (JSONL), resumable shard by shard.

    Requests are ordered by prompt length, then cut into shards of `shard_size`; each shard
    is sampled with its own seed and journaled, so a killed run redoes at most one shard
    and ends with exactly the samples of an uninterrupted run. A sampler that spreads
    shards over workers (Ray) returns them as they finish; this process journals each. `key` (the stage's
    fingerprint) names the journal: shards sampled under another config or model are
    never reused.
    """
    requests = sorted(((p, i) for p in problems for i in range(k)), key=lambda r: len(r[0].prompt))
    shards = [requests[s : s + shard_size] for s in range(0, len(requests), shard_size)]
    key = fingerprint(key, seed, k, shard_size, params, [p.id for p in problems])
    for stale in out.parent.glob(f"{out.name}.*.journal"):
        if stale.name != f"{out.name}.{key}.journal":
            stale.unlink()
    journal = ShardJournal(out.with_name(f"{out.name}.{key}.journal"))
    done_before = sum(len(journal.done.get(j, [])) for j in range(len(shards)))
    with ui.Bar(desc, len(requests), done_before) as bar:
        jobs = [(j, [p.prompt for p, _ in shard], params, derive_seed(seed, "shard", j))
                for j, shard in enumerate(shards) if j not in journal.done]
        for j, texts in map_shards(sampler, jobs):
            rows = [Sample(p.id, i, p.prompt, t).to_json() for (p, i), t in zip(shards[j], texts)]
            journal.append(j, rows)
            faults.point(f"{out.parent.name}/{out.name}:shard{j}")
            bar.advance(len(shards[j]))
    rows = [r for j in range(len(shards)) for r in journal.done[j]]
    rows.sort(key=lambda r: (r["problem_id"], r["index"]))
    write_jsonl(out, rows)
    journal.remove()
    return [Sample.from_json(r) for r in rows]


def load_samples(path: Path) -> list[Sample]:
    return [Sample.from_json(r) for r in read_jsonl(path)]


def generate(ctx: RunContext, group: str, model: Artifact, problems: Sequence[Problem], gen: Generation,
             name: str = "generate", sampler: SamplerConfig | None = None, seed: int | None = None) -> Artifact:
    """`gen.k` samples per problem from `model` (with the policy's backend, or `sampler`)
    -> RUN/<group>/samples.jsonl (`<name>.jsonl` for a stage of another name), the artifact's
    `samples`; `seed`: the stage's seed (default: derived from its name)."""
    out = ctx.path(group, file_of(name, "generate", "samples.jsonl"))
    sampler = sampler or ctx.policy
    seed = ctx.seed(f"{group}/{name}") if seed is None else seed
    fp = fingerprint(name, model.fp, gen.model_dump(), [p.to_json() for p in problems], sampler.model_dump(), seed)

    def work() -> dict:
        samples = sample_shards(ctx.sampler(model, sampler), problems, gen.k, gen.params(), out, seed, gen.shard_size,
                                desc=f"{group} {name}", key=fp)
        return {"samples": len(samples), "model": ctx.relative(model.path)}

    ctx.stage(f"{group}/{name}", fp, work, outputs={"samples": out})
    return Artifact.of(fp, "samples", samples=out)
