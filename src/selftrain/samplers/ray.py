"""The Ray backend: a run's generation shards on sampler actors and its verifier batches as
tasks; `selftrain.samplers.make_sampler` chooses it when `ray.address` is set.

The driver (the `selftrain run` process) keeps every journal and decides what is done:
workers only sample or score what they are sent and return it. So a killed driver resumes
from its shard journal like a local run, and a worker that dies mid-shard is restarted by
Ray (`max_restarts`) and its shard retried (`max_task_retries`); the driver writes a shard
once, when its result arrives. Only Ray's own primitives are used: actors, `ActorPool`,
remote tasks, `ray.get`.

Each worker builds the same sampler a local run would (`make_sampler`) and each shard is
sampled with the shard's own seed, so a Ray run writes the samples of a local run with the
same seed.

What a remote cluster needs: selftrain and its extras installed on every node, and the run
folder's model checkpoints readable at the same path on every node (a shared filesystem);
`ray.address: local` on one machine needs neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from selftrain.config import RayConfig, SamplerConfig
from selftrain.samplers.base import SamplingParams, Shard


def connect(cfg: RayConfig) -> None:
    """Join the cluster at `cfg.address` (or start a local one) unless this process already has."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"ray.address is set but Ray is not installed ({err}): pip install 'selftrain[ray]'") from None
    if ray.is_initialized():
        return
    quiet = dict(log_to_driver=False, configure_logging=True, logging_level="WARNING")
    if cfg.address == "local":
        ray.init(include_dashboard=False, **quiet)
    else:
        ray.init(address=cfg.address, **quiet)


def worker_resources(cfg: RayConfig, sampler: SamplerConfig, gpu: bool | None = None) -> dict[str, float]:
    """What each sampler worker reserves: `ray.resources`, or by default one GPU for a vLLM
    sampler on a machine with one, one CPU otherwise.

    >>> worker_resources(RayConfig(), SamplerConfig(backend="vllm"), gpu=True), worker_resources(RayConfig(), SamplerConfig(), gpu=True)
    ({'GPU': 1.0}, {'CPU': 1.0})
    """
    if cfg.resources is not None:
        return dict(cfg.resources)
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    return {"GPU": 1.0} if gpu and sampler.backend == "vllm" else {"CPU": 1.0}


def _actor_options(cfg: RayConfig, resources: dict[str, float]) -> dict[str, Any]:
    res = dict(resources)
    gpus = res.pop("GPU", 0)
    options = dict(num_cpus=res.pop("CPU", 0), num_gpus=gpus, resources=res or None, max_restarts=cfg.max_restarts,
                   max_task_retries=-1)
    if not gpus:
        # Ray 2.60 leaves CUDA_VISIBLE_DEVICES as it is for an actor with no GPU (ray/_private/utils.py
        # set_visible_accelerator_ids; RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO off): it would see every GPU
        options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
    return options


def check_room(workers: int, per_worker: dict[str, float], total: dict[str, float], nodes: list[dict[str, float]]) -> None:
    """Refuse, with the numbers, a pool of workers the cluster cannot place (an actor Ray
    cannot place waits forever, silently).

    >>> check_room(2, {"GPU": 1.0}, {"GPU": 1.0, "CPU": 2.0}, [{"GPU": 1.0, "CPU": 2.0}])
    Traceback (most recent call last):
    ...
    selftrain.errors.ConfigError: ray: 2 workers x {'GPU': 1.0} need GPU 2, the cluster has 1 (nodes: [1.0]); set ray.workers or ray.resources (e.g. {GPU: 0.5} for two engines on one GPU)
    """
    from selftrain.errors import ConfigError

    for name, amount in per_worker.items():
        if amount <= 0:
            continue
        have = total.get(name, 0.0)
        on_nodes = [n.get(name, 0.0) for n in nodes]
        placeable = sum(int(n // amount + 1e-9) for n in on_nodes)
        if placeable < workers:
            raise ConfigError(f"ray: {workers} workers x {per_worker} need {name} {workers * amount:g}, the cluster has "
                              f"{have:g} (nodes: {[round(n, 3) for n in on_nodes]}); set ray.workers or ray.resources "
                              "(e.g. {GPU: 0.5} for two engines on one GPU)")


class SamplerWorker:
    """A Ray actor holding one sampler (one engine, one model copy) across shards."""

    def __init__(self, sampler: dict, model: str, threads: int, turns: list = ()):
        from selftrain.models import set_torch_threads
        from selftrain.samplers.registry import backend

        set_torch_threads(threads)
        cfg = SamplerConfig.model_validate(sampler)
        self.sampler = backend(cfg.backend).make(cfg, model, None, tuple(tuple(t) for t in turns))

    def shard(self, j: int, prompts: Sequence[str], params: SamplingParams, seed: int) -> tuple[int, list[str]]:
        return j, self.sampler.generate(prompts, params, seed)

    def call(self, method: str, *args) -> Any:
        return getattr(self.sampler, method)(*args)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        if hasattr(self.sampler, "close"):
            self.sampler.close()


class RaySampler:
    """`cfg.workers` sampler actors over one model folder.

    `map_shards` spreads a stage's shards over them (the generate stage uses it); a single
    `generate` call (evaluation, a judge) goes whole to one worker, so that its result is
    the local sampler's.
    """

    def __init__(self, cfg: RayConfig, sampler: SamplerConfig, model: str, turns: Sequence[tuple[str, str]] = ()):
        import ray
        from ray.util import ActorPool

        connect(cfg)
        resources = worker_resources(cfg, sampler)
        check_room(cfg.workers, resources, ray.cluster_resources(), [n["Resources"] for n in ray.nodes() if n.get("Alive")])
        threads = max(1, int(resources.get("CPU", 1)))
        actor = ray.remote(SamplerWorker).options(**_actor_options(cfg, resources))
        self.workers = [actor.remote(sampler.model_dump(mode="json"), str(model), threads, [list(t) for t in turns])
                        for _ in range(cfg.workers)]
        self.pool = ActorPool(self.workers)
        self.model_path = str(model)

    def map_shards(self, jobs: Iterable[Shard]) -> Iterator[tuple[int, list[str]]]:
        """(shard number, completions) for each job, in the order they finish."""
        yield from self.pool.map_unordered(lambda worker, job: worker.shard.remote(*job), list(jobs))

    def _call(self, method: str, *args) -> Any:
        import ray

        return ray.get(self.workers[0].call.remote(method, *args))

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        return self._call("generate", list(prompts), params, seed)

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        return self._call("continue_texts", list(prompts), list(starts), params, seed)

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]:
        return self._call("choose_next", list(prompts), list(starts), list(options))

    def pids(self) -> list[int]:
        """The workers' process ids (for tests that kill one)."""
        import ray

        return ray.get([w.pid.remote() for w in self.workers])

    def close(self) -> None:
        """Free the engines, then end the actors."""
        import ray

        try:
            ray.get([w.close.remote() for w in self.workers], timeout=60)
        except Exception:  # a worker already gone frees nothing more
            pass
        for w in self.workers:
            ray.kill(w)
        self.workers = []


def _verify(verifier, problems, completions):
    return verifier(problems, completions)


def verify(cfg: RayConfig, verifier, problems: Sequence, completions: Sequence[str], chunk: int = 512) -> list:
    """`verifier(problems, completions)` in chunks, as Ray tasks (retried if a worker dies),
    results in order."""
    import ray

    connect(cfg)
    task = ray.remote(_verify).options(num_cpus=1, max_retries=cfg.max_restarts)
    ref = ray.put(verifier)
    parts = [task.remote(ref, list(problems[s : s + chunk]), list(completions[s : s + chunk]))
             for s in range(0, len(problems), chunk)]
    return [score for part in ray.get(parts) for score in part]
