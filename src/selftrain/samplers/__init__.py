"""One sampler factory for every role: the policy, a teacher, a judge, evaluation; the one
place that knows Ray (`make_sampler(..., ray=)`, `run_verifier`).

Backends are registered by name (`BACKENDS`); each declares the optional abilities it has
under a given config (`samplers.base`: `Continues`, `ChoosesNext`, `FailsRows`, plus
`local`: it loads a model folder, so it can sample each checkpoint a run makes). A method
declares what it needs per role (`Method.needs`), and `check_needs` refuses a config whose
backend lacks it, before any work, naming the ability and the backends that have it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selftrain.config import RayConfig, SamplerConfig
from selftrain.errors import ConfigError
from selftrain.records import Problem, Score
from selftrain.samplers.base import Sampler, SamplingParams

ABILITIES = {
    "local": "load a model folder (every checkpoint a run trains)",
    "continue": "continue a started answer (an assistant prefill)",
    "choose_next": "read next-token probabilities",
    "fails_rows": "report single failed rows after retries",
}


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[SamplerConfig, str, Path | None], Sampler]
    """(settings, model name or folder, run folder for caches and failed rows) -> a sampler."""
    abilities: Callable[[SamplerConfig], frozenset[str]]


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


def _chat(cfg: SamplerConfig, sampler: Sampler) -> Sampler:
    if cfg.chat:
        from selftrain.samplers.chat import ChatTemplateSampler

        return ChatTemplateSampler(sampler, cfg.system)
    return sampler


def _make_hf(cfg: SamplerConfig, model: str, run_dir: Path | None) -> Sampler:
    from selftrain.samplers.hf import HFSampler

    return _chat(cfg, HFSampler(model, batch_size=cfg.batch_size))


def _make_vllm(cfg: SamplerConfig, model: str, run_dir: Path | None) -> Sampler:
    from selftrain.samplers.vllm import VLLMSampler

    return _chat(cfg, VLLMSampler(model, cfg.vllm))


def _make_openai(cfg: SamplerConfig, model: str, run_dir: Path | None) -> Sampler:
    from selftrain.samplers.openai import OpenAISampler

    if not cfg.base_url:
        raise ConfigError("backend openai needs base_url")
    return OpenAISampler(
        cfg.base_url, model, mode="chat" if cfg.chat else "completion", api_key_env=cfg.api_key_env,
        max_concurrency=cfg.max_concurrency, max_retries=cfg.max_retries, timeout=cfg.timeout,
        cache=run_dir / "api-cache.sqlite" if run_dir else None,
        failed_path=run_dir / "failed-requests.jsonl" if run_dir else None, system=cfg.system,
    )


LOCAL = frozenset({"local", "continue", "choose_next"})
register_backend(Backend("hf", _make_hf, lambda cfg: LOCAL))
register_backend(Backend("vllm", _make_vllm, lambda cfg: LOCAL))
register_backend(Backend("openai", _make_openai,
                         lambda cfg: frozenset({"fails_rows"} if cfg.chat else {"fails_rows", "continue"})))


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ConfigError(f"unknown sampler backend {name!r} (registered: {', '.join(sorted(BACKENDS))})")
    return BACKENDS[name]


def make_sampler(cfg: SamplerConfig, model: str | Path, run_dir: Path | None = None, ray: RayConfig | None = None) -> Sampler:
    """A sampler over `model` with the backend and settings of `cfg`; with `ray` naming a
    cluster (`ray.address`), a pool of Ray workers each holding that backend's sampler
    (`samplers.ray`), for a backend that loads model folders (an endpoint needs no workers)."""
    if ray is not None and ray.address and "local" in backend(cfg.backend).abilities(cfg):
        from selftrain.samplers.ray import RaySampler

        return RaySampler(ray, cfg, str(model))
    return backend(cfg.backend).make(cfg, str(model), run_dir)


def run_verifier(verifier, problems: Sequence[Problem], completions: Sequence[str], ray: RayConfig | None = None) -> list[Score]:
    """`verifier(problems, completions)`; with `ray` naming a cluster, in batches of Ray tasks
    (not for a verifier that judges a problem's samples together: `whole_groups`)."""
    if ray is not None and ray.address and not getattr(verifier, "whole_groups", False):
        from selftrain.samplers.ray import verify

        return verify(ray, verifier, problems, completions)
    return verifier(problems, completions)


def close(sampler: Sampler | None) -> None:
    """Free what a sampler holds (a vLLM engine, Ray workers) now, not at garbage collection."""
    if sampler is not None and hasattr(sampler, "close"):
        sampler.close()


def check_needs(where: str, cfg: SamplerConfig, needs: set[str]) -> None:
    """Refuse a sampler config whose backend lacks an ability the method needs there."""
    have = backend(cfg.backend).abilities(cfg)
    for ability in sorted(needs - have):
        able = [n for n, b in sorted(BACKENDS.items()) if ability in b.abilities(cfg)]
        raise ConfigError(f"{where}: this method needs a sampler that can {ABILITIES[ability]}; backend "
                          f"{cfg.backend!r}{' (chat)' if cfg.chat else ''} cannot. Backends that can: "
                          f"{', '.join(able) or 'none'}")


__all__ = ["Sampler", "SamplingParams", "Backend", "BACKENDS", "register_backend", "make_sampler", "run_verifier",
           "check_needs", "close"]
