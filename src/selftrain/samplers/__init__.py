"""One sampler factory for every role: the policy, a teacher, a judge, evaluation; the one
place that knows Ray (`make_sampler(..., ray=)`, `run_verifier`).

Backends are found by name (`BACKENDS`, a registry like methods', tasks' and verifiers'); each declares the optional abilities it has
under a given config (`samplers.registry`). A method
declares what it needs per role (`Method.needs`), and `check_needs` refuses a config whose
backend lacks it, before any work, naming the ability and the backends that have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selftrain.config import RayConfig, SamplerConfig
from selftrain.errors import ConfigError
from selftrain.records import Problem, Score
from selftrain.samplers.base import Sampler, SamplingParams
from selftrain.samplers.registry import ABILITIES, BACKENDS, LOCAL, Backend, backend, register_backend


def make_sampler(cfg: SamplerConfig, model: str | Path, run_dir: Path | None = None, ray: RayConfig | None = None,
                 turns: Sequence[tuple[str, str]] = ()) -> Sampler:
    """A sampler over `model` with the backend and settings of `cfg` (with `chat`, each prompt
    the last user turn after `turns`); with `ray` naming a cluster (`ray.address`), a pool of
    Ray workers each holding that backend's sampler (`samplers.ray`), for a backend that
    loads model folders (an endpoint needs no workers)."""
    if ray is not None and ray.address and "local" in backend(cfg.backend).abilities(cfg):
        from selftrain.samplers.ray import RaySampler

        return RaySampler(ray, cfg, str(model), turns)
    return backend(cfg.backend).make(cfg, str(model), run_dir, tuple(turns))


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


def auto_backend() -> str:
    """What `backend: auto` means on this machine: vLLM when it is installed, else transformers."""
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def resolve_auto(cfg):
    """A config with every sampler's `backend: auto` replaced by `auto_backend()` (so the run's
    config.yaml records what ran)."""
    from pydantic import BaseModel

    update = {}
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if isinstance(value, SamplerConfig) and value.backend == "auto":
            update[name] = resolve_auto(value).model_copy(update={"backend": auto_backend()})
        elif isinstance(value, BaseModel):
            resolved = resolve_auto(value)
            if resolved is not value:
                update[name] = resolved
    return cfg.model_copy(update=update) if update else cfg


def check_needs(where: str, cfg: SamplerConfig, needs: set[str]) -> None:
    """Refuse a sampler config whose backend lacks an ability the method needs there."""
    have = backend(cfg.backend).abilities(cfg)
    for ability in sorted(needs - have):
        able = [n for n in BACKENDS.names() if ability in backend(n).abilities(cfg)]
        raise ConfigError(f"{where}: this method needs a sampler that can {ABILITIES[ability]}; backend "
                          f"{cfg.backend!r}{' (chat)' if cfg.chat else ''} cannot. Backends that can: "
                          f"{', '.join(able) or 'none'}")


__all__ = ["Sampler", "SamplingParams", "Backend", "BACKENDS", "LOCAL", "backend", "register_backend", "make_sampler", "run_verifier",
           "auto_backend", "resolve_auto",
           "check_needs", "close"]
