"""Batched sampling with transformers: left padding, KV cache, stop at EOS.

Prompts are grouped by length so that a batch carries little padding. The default lean
loop drops each sequence from the batch as soon as it ends; `model.generate` (the other
engine) keeps it until every sequence of the batch has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from selftrain.artifacts import derive_seed
from selftrain.models import load_model, load_tokenizer
from selftrain.samplers.base import SamplingParams


class HFSampler:
    """Samples from a local transformers model (a folder or a Hugging Face name).

    `engine="lean"` (default) uses the decoding loop below, `engine="generate"` uses
    `model.generate`; both give the same greedy output (a test checks it).
    """

    def __init__(
        self, model_path: str | Path, batch_size: int = 256, device: str | None = None, engine: str = "lean"
    ):
        if engine not in ("lean", "generate"):
            raise ValueError(f"engine must be 'lean' or 'generate', not {engine!r}")
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.engine = engine
        self.tokenizer = load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"
        self.model = load_model(model_path, self.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = sorted({e for e in [*eos, self.tokenizer.eos_token_id] if e is not None})

    @classmethod
    def of_loaded(cls, model, tokenizer, batch_size: int = 256) -> HFSampler:
        """A sampler over a model already in memory (e.g. one in training), left as it is
        found: its device, its weights; the caller switches eval / train mode."""
        self = cls.__new__(cls)
        self.model_path, self.batch_size, self.engine = "(in memory)", batch_size, "lean"
        self.device = next(model.parameters()).device
        self.tokenizer = tokenizer
        self.model = model
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = sorted({e for e in [*eos, tokenizer.eos_token_id] if e is not None})
        return self

    def _decode_batch(self, prompt_ids: list[list[int]], params: SamplingParams, seed: int) -> list[str]:
        """A lean decoding loop: KV cache, and rows leave the batch as soon as they hit EOS.

        `model.generate` keeps finished rows in the batch until the last one ends and runs
        its general logits pipeline every step; for small models that overhead dominates.
        Same distribution as `generate` (temperature, top-k, top-p); draws from its own
        seeded generator, so results depend only on the seed and the batch.
        """
        from transformers import DynamicCache

        eos = torch.tensor(self.eos_ids, device=self.device)
        input_ids, mask = self._left_pad(prompt_ids)
        n = len(prompt_ids)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        alive = torch.arange(n, device=self.device)  # rows of the original batch still decoding
        out_tokens: list[list[int]] = [[] for _ in range(n)]
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
            ).logits[:, -1, :]
            next_pos = positions[:, -1:] + 1
            for _ in range(params.max_new_tokens):
                tokens = _pick(logits.float(), params, gen)
                done = torch.isin(tokens, eos)
                for row, tok, end in zip(alive.tolist(), tokens.tolist(), done.tolist()):
                    if not end:
                        out_tokens[row].append(tok)
                if bool(done.all()):
                    break
                if bool(done.any()):
                    keep = (~done).nonzero().squeeze(1)
                    alive, tokens, mask, next_pos = alive[keep], tokens[keep], mask[keep], next_pos[keep]
                    cache.batch_select_indices(keep)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                logits = self.model(
                    input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos,
                    past_key_values=cache, use_cache=True,
                ).logits[:, -1, :]
                next_pos = next_pos + 1
        return self.tokenizer.batch_decode(out_tokens, skip_special_tokens=True)

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        """What follows `starts[i]` in the completion of `prompts[i]` (raw text: the two joined)."""
        return self.generate([p + s for p, s in zip(prompts, starts)], params, seed)

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]:
        """For each prompt + start, the index of the most probable of `options` as the next
        token (one forward pass each; every option must be a single token)."""
        ids = [self.tokenizer.encode(o, add_special_tokens=False) for o in options]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"options {list(options)} are not single tokens for {self.model_path}")
        option_ids = torch.tensor([i[0] for i in ids], device=self.device)
        encoded = self.tokenizer([p + s for p, s in zip(prompts, starts)], add_special_tokens=True)["input_ids"]
        self._check_context(encoded, 0)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = [0] * len(encoded)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                input_ids, mask = self._left_pad([encoded[i] for i in idx])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
                for i, best in zip(idx, logits[:, option_ids].argmax(-1).tolist()):
                    out[i] = best
        return out

    def _check_context(self, encoded: list[list[int]], new_tokens: int) -> None:
        """A clear error, not an index error, when prompts and new tokens exceed the context."""
        context = getattr(self.model.config, "n_positions", None) or getattr(self.model.config, "max_position_embeddings", None)
        longest = max((len(ids) for ids in encoded), default=0)
        if context and longest + new_tokens > context:
            raise ValueError(
                f"a prompt of {longest} tokens plus max_new_tokens={new_tokens} exceeds the model's "
                f"context of {context} positions (a tiny model: raise model.tiny.max_length)"
            )

    def _left_pad(self, prompt_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of a batch, padded on the left, on the device."""
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _generate_batch(self, prompt_ids: list[list[int]], params: SamplingParams, seed: int) -> list[str]:
        input_ids, attention = self._left_pad(prompt_ids)
        kwargs: dict = dict(
            max_new_tokens=params.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            use_cache=True,
        )
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.top_k > 0 else None,
            )
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        return self.tokenizer.batch_decode(out[:, input_ids.shape[1] :], skip_special_tokens=True)

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        if not prompts:
            return []
        encoded = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        self._check_context(encoded, params.max_new_tokens)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        results: list[str] = [""] * len(prompts)
        decode = self._decode_batch if self.engine == "lean" else self._generate_batch
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start : start + self.batch_size]
            texts = decode([encoded[i] for i in idx], params, derive_seed(seed, "batch", b))
            for i, text in zip(idx, texts):
                results[i] = params.cut(text)
        return results


def _pick(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    """Next tokens: argmax when greedy, else a draw after temperature, top-k and top-p."""
    if params.greedy:
        return logits.argmax(-1)
    logits = logits / params.temperature
    if params.top_k > 0 and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens ranked above it already reach top_p
        drop = probs.cumsum(-1) - probs >= params.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)
