"""A local chat model sampled through its chat template (`chat: true` on the `hf` and `vllm`
backends), and the messages every backend sends a chat model (`chat_messages`)."""

from __future__ import annotations

from collections.abc import Sequence

from selftrain.errors import ConfigError
from selftrain.samplers.base import SamplingParams


def chat_messages(prompt: str, system: str | None = None, turns: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The conversation a prompt is sent as: a system turn, earlier (user, assistant) turns
    (few-shot examples), the prompt as the last user turn.

    >>> chat_messages("2+2?", "Be brief.", [("1+1?", "2")])
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': '1+1?'}, {'role': 'assistant', 'content': '2'}, {'role': 'user', 'content': '2+2?'}]
    """
    messages = [{"role": "system", "content": system}] if system else []
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages + [{"role": "user", "content": prompt}]


class ChatTemplateSampler:
    """Sends each prompt to a local chat model as the last user turn of `chat_messages`,
    through the model's chat template."""

    def __init__(self, inner, system: str | None = None, turns: Sequence[tuple[str, str]] = ()):
        self.inner, self.system, self.turns = inner, system, tuple(turns)
        self.tokenizer = inner.tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"{inner.model_path} has no chat template: set chat: false to send raw text")

    def format(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(chat_messages(prompt, self.system, self.turns), tokenize=False,
                                                  add_generation_prompt=True)
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

    def __getattr__(self, name: str):
        """`switch` and `rest` pass through to the engine beneath, when it has them."""
        if name in ("switch", "rest"):
            return getattr(self.inner, name)
        raise AttributeError(name)
