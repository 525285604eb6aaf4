"""Stages shared by every method: generate, score, and the SFT examples they feed.

Each works on files in a run folder, so a method's loop body is a few calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from selftrain import faults
from selftrain.artifacts import ShardJournal, derive_seed, fingerprint, read_jsonl, write_jsonl
from selftrain.records import Problem, Sample, Score
from selftrain.samplers.base import Sampler, SamplingParams
from selftrain.verifiers.base import Verifier


def generate(
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
    and ends with exactly the samples of an uninterrupted run. `key` (the stage's
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
    bar = tqdm(total=len(requests), initial=done_before, desc=desc, unit="sample", leave=False)
    for j, shard in enumerate(shards):
        if j in journal.done:
            continue
        texts = sampler.generate([p.prompt for p, _ in shard], params, seed=derive_seed(seed, "shard", j))
        rows = [Sample(p.id, i, p.prompt, t).to_json() for (p, i), t in zip(shard, texts)]
        journal.append(j, rows)
        faults.point(f"{out.parent.name}/{out.name}:shard{j}")
        bar.update(len(shard))
    bar.close()
    rows = [r for j in range(len(shards)) for r in journal.done[j]]
    rows.sort(key=lambda r: (r["problem_id"], r["index"]))
    write_jsonl(out, rows)
    journal.remove()
    return [Sample.from_json(r) for r in rows]


def score(verifier: Verifier, problems: Sequence[Problem], samples: Sequence[Sample], out: Path) -> list[Score]:
    """One Score per sample into `out` (JSONL), aligned with the samples."""
    by_id = {p.id: p for p in problems}
    scores = verifier([by_id[s.problem_id] for s in samples], [s.completion for s in samples])
    write_jsonl(out, ({"problem_id": s.problem_id, "index": s.index, **sc.to_json()} for s, sc in zip(samples, scores)))
    return scores


def load_samples(path: Path) -> list[Sample]:
    return [Sample.from_json(r) for r in read_jsonl(path)]


def load_scores(path: Path) -> list[Score]:
    return [Score(value=r["value"], reason=r["reason"], answer=r.get("answer")) for r in read_jsonl(path)]


def sft_rows(pairs: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Prompt-completion rows, the dataset format TRL's SFTTrainer trains on."""
    return [{"prompt": p, "completion": c} for p, c in pairs]


class ModelCache:
    """Samplers over model folders, loading each model once; one model in memory at a time."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._samplers: dict = {}

    def sampler(self, path: Path):
        from selftrain.samplers.hf import HFSampler

        key = str(path)
        if key not in self._samplers:
            self._samplers.clear()
            self._samplers[key] = HFSampler(path, batch_size=self.batch_size)
        return self._samplers[key]


class TrainEval:
    """The train and evaluate stages that ReST-EM and distillation run per group (`sft`,
    `iter-01`, `round-01`, ...): each writes `RUN/<group>/model` or `RUN/<group>/eval.json`
    under a fingerprint of its inputs, so a rerun skips what is done."""

    def __init__(self, run, cfg, models: ModelCache, test: Sequence[Problem], grader: Verifier, data_fp: str,
                 max_len: int | None, log):
        self.run, self.cfg, self.models, self.test, self.grader = run, cfg, models, test, grader
        self.data_fp, self.max_len, self.log = data_fp, max_len, log

    def train(self, group: str, start: Path, start_fp: str, rows_fn, rows_fp: str, train_cfg) -> tuple[Path, str]:
        """SFT from `start` on `rows_fn()` -> RUN/<group>/model; the model and its fingerprint."""
        from selftrain.training.sft import train_sft

        model = self.run.path(group, "model")
        fp = fingerprint("train", start_fp, rows_fp, train_cfg.model_dump(), self.cfg.seed, group)
        self.run.stage(f"{group}/train", fp, lambda: train_sft(start, rows_fn(), train_cfg, model,
                                                                derive_seed(self.cfg.seed, group), self.max_len), self.log)
        return model, fp

    def evaluate(self, group: str, model: Path, model_fp: str) -> str:
        """Test accuracy (greedy), pass@k and maj@k of `model` -> RUN/<group>/eval.json."""
        from selftrain.evaluation import evaluate

        fp = fingerprint("eval", model_fp, self.cfg.eval.model_dump(), self.data_fp, self.cfg.seed)
        self.run.stage(f"{group}/evaluate", fp, lambda: evaluate(
            self.models.sampler(model), self.test, self.grader, self.cfg.eval, self.run.path(group),
            derive_seed(self.cfg.seed, f"{group}/evaluate"), desc=f"{group} eval", key=fp), self.log)
        return fp
