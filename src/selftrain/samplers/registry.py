"""The backends by name (`BACKENDS`, a `selftrain.plugins.Registry` like methods, tasks and
verifiers): each a `Backend` with its maker and the abilities it has under a given config
(`base`: `Continues`, `ChoosesNext`, `FailsRows`, plus `local`: it loads a model folder, so
it can sample each checkpoint a run makes). One of your own is registered
(`register_backend`), an entry point (group `selftrain.backends`), or an import path to a
`Backend` (`sampler.backend: my_backend.py:BACKEND`). Nothing here knows Ray."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selftrain.config import SamplerConfig
from selftrain.errors import ConfigError
from selftrain.plugins import Registry
from selftrain.samplers.base import Sampler

ABILITIES = {
    "local": "load a model folder (every checkpoint a run trains)",
    "continue": "continue a started answer (an assistant prefill)",
    "choose_next": "read next-token probabilities",
    "fails_rows": "report single failed rows after retries",
}


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[..., Sampler]
    """(settings, model name or folder, run folder for caches and failed rows, few-shot
    (user, assistant) turns for a chat model) -> a sampler."""
    abilities: Callable[[SamplerConfig], frozenset[str]]
    chat_view: bool = False
    """A chat template is applied over its sampler (a local model), so the chat settings are
    no part of its engine (`samplers.engine`)."""


def _backend(obj: object, name: str) -> Backend:
    if not isinstance(obj, Backend):
        raise ConfigError(f"sampler.backend: {name} is a {type(obj).__name__}, not a selftrain.samplers.Backend")
    return obj


BACKENDS: Registry[Backend] = Registry("sampler backend", {
    "hf": "selftrain.samplers.registry:HF",
    "vllm": "selftrain.samplers.registry:VLLM",
    "openai": "selftrain.samplers.registry:OPENAI",
}, setting="sampler.backend", check=_backend, group="selftrain.backends")


def register_backend(backend: Backend) -> Backend:
    """Make a backend available by its name (`sampler.backend: <name>`)."""
    return BACKENDS.register(backend.name, backend)


def _chat(cfg: SamplerConfig, sampler: Sampler, turns) -> Sampler:
    if cfg.chat:
        from selftrain.samplers.chat import ChatTemplateSampler

        return ChatTemplateSampler(sampler, cfg.system, turns)
    return sampler


def _make_hf(cfg: SamplerConfig, model: str, run_dir: Path | None, turns=()) -> Sampler:
    from selftrain.samplers.hf import HFSampler

    return _chat(cfg, HFSampler(model, batch_size=cfg.batch_size), turns)


def _make_vllm(cfg: SamplerConfig, model: str, run_dir: Path | None, turns=()) -> Sampler:
    from selftrain.samplers.vllm import VLLMSampler

    return _chat(cfg, VLLMSampler(model, cfg.vllm), turns)


def _make_openai(cfg: SamplerConfig, model: str, run_dir: Path | None, turns=()) -> Sampler:
    from selftrain.samplers.openai import OpenAISampler

    if not cfg.base_url:
        raise ConfigError("backend openai needs base_url")
    return OpenAISampler(
        cfg.base_url, model, mode="chat" if cfg.chat else "completion", api_key_env=cfg.api_key_env,
        max_concurrency=cfg.max_concurrency, max_retries=cfg.max_retries, timeout=cfg.timeout,
        cache=run_dir / "api-cache.sqlite" if run_dir else None,
        failed_path=run_dir / "failed-requests.jsonl" if run_dir else None, system=cfg.system,
        turns=turns if cfg.chat else (),
    )


LOCAL = frozenset({"local", "continue", "choose_next"})
HF = Backend("hf", _make_hf, lambda cfg: LOCAL, chat_view=True)
VLLM = Backend("vllm", _make_vllm, lambda cfg: LOCAL, chat_view=True)
OPENAI = Backend("openai", _make_openai, lambda cfg: frozenset({"fails_rows"} if cfg.chat else {"fails_rows", "continue"}))


def backend(name: str) -> Backend:
    """The backend `name` stands for (a built-in, registered, an entry point, an import path)."""
    return BACKENDS.get(name)
