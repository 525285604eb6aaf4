"""A local chat model sampled through its chat template (`chat: true` on the `hf` backend)."""

from __future__ import annotations

from collections.abc import Sequence

from selftrain.errors import ConfigError
from selftrain.samplers.base import SamplingParams


class ChatTemplateSampler:
    """Sends each prompt to a local chat model as one user message, through its chat template."""

    def __init__(self, inner, system: str | None = None):
        self.inner, self.system = inner, system
        self.tokenizer = inner.tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"{inner.model_path} has no chat template: set chat: false to send raw text")

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

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()
