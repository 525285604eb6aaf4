"""The sampler a `teacher:` config section names: a local model or an OpenAI-compatible API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selftrain.config import TeacherConfig
from selftrain.errors import ConfigError
from selftrain.samplers.base import Sampler, SamplingParams


class ChatTemplateSampler:
    """Sends each prompt to a local chat model as one user message, through its chat template."""

    def __init__(self, inner, system: str | None = None):
        self.inner, self.system = inner, system
        self.tokenizer = inner.tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"{inner.model_path} has no chat template: set teacher.chat: false to send raw text")

    def format(self, prompt: str) -> str:
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        return self.inner.generate([self.format(p) for p in prompts], params, seed)

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        """The answers continued from `starts` (written after the assistant header)."""
        return self.inner.generate([self.format(p) + s for p, s in zip(prompts, starts)], params, seed)

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]:
        """The most probable of `options` as the next token of each answer begun with `starts`."""
        return self.inner.choose_next([self.format(p) for p in prompts], starts, options)


def make_teacher(cfg: TeacherConfig, run_dir: Path) -> Sampler:
    """The teacher's sampler; an API teacher caches its answers in RUN/api-cache.sqlite and
    lists rows that failed every retry in RUN/failed-requests.jsonl."""
    if not cfg.model:
        raise ConfigError("teacher.model is empty: name a model folder, a .gguf file, or the API's model name")
    if cfg.backend == "openai":
        from selftrain.samplers.openai import OpenAISampler

        if not cfg.base_url:
            raise ConfigError("teacher.base_url is required with backend: openai")
        return OpenAISampler(
            cfg.base_url, cfg.model, mode="chat" if cfg.chat else "completion", api_key_env=cfg.api_key_env,
            max_concurrency=cfg.max_concurrency, max_retries=cfg.max_retries, timeout=cfg.timeout,
            cache=run_dir / "api-cache.sqlite", failed_path=run_dir / "failed-requests.jsonl", system=cfg.system,
        )
    from selftrain.samplers.hf import HFSampler

    sampler = HFSampler(cfg.model, batch_size=cfg.batch_size)
    return ChatTemplateSampler(sampler, cfg.system) if cfg.chat else sampler
