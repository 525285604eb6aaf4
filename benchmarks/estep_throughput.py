"""E-step throughput: selftrain's generate stage against a plain batched `model.generate` loop.

Both sample the same prompts (K per pool problem) from the same model with the same
batch size and sampling parameters, in the same process, one after the other and then
once more in the other order; the script prints samples/s of each and their ratio.

    python benchmarks/estep_throughput.py [--model RUN/sft/model] [--k 4] [--batch-size 512]

Without --model it trains the demo's SFT model first (about a minute).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from selftrain import stages
from selftrain.methods.rest_em import RestEMConfig
from selftrain.models import set_torch_threads
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.hf import HFSampler
from selftrain.tasks import build_task


def plain_loop(model, tokenizer, prompts: list[str], batch_size: int, params: SamplingParams) -> int:
    """The baseline: batches in the given order, left padding, model.generate."""
    tokenizer.padding_side = "left"
    n = 0
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **batch, do_sample=True, temperature=params.temperature, top_k=None, top_p=None,
                max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            )
        n += len(tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True))
    return n


def ours(sampler: HFSampler, problems, k: int, params: SamplingParams, folder: Path) -> int:
    out = folder / "samples.jsonl"
    out.unlink(missing_ok=True)
    return len(stages.sample_shards(sampler, problems, k, params, out, seed=0, shard_size=1 << 30, desc="ours"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a model folder (default: train the demo's SFT model)")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=RestEMConfig().model.sampler.batch_size)
    ap.add_argument("--problems", type=int, default=1000)
    args = ap.parse_args()
    set_torch_threads(None)
    cfg = RestEMConfig()
    task = build_task(cfg.task)
    problems = task.pool()[: args.problems]
    params = SamplingParams(temperature=cfg.rest_em.e_step.temperature, max_new_tokens=cfg.rest_em.e_step.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            from selftrain.training.sft import train_sft
            from selftrain.training.tiny import save_tiny

            save_tiny(folder / "init", cfg.model.tiny, 0)
            rows = [{"prompt": p.prompt, "completion": p.solution} for p in task.human()]
            train_sft(folder / "init", rows, cfg.rest_em.sft, folder / "sft", 0, cfg.model.tiny.max_length)
            model_dir = folder / "sft"
        sampler = HFSampler(model_dir, batch_size=args.batch_size)
        prompts = [p.prompt for p in problems for _ in range(args.k)]
        times = {"plain model.generate loop": [], "selftrain generate stage": []}
        for order in (0, 1):  # measure both in both orders: A B, then B A
            for name in (list(times) if order == 0 else list(reversed(times))):
                torch.manual_seed(0)
                t = time.perf_counter()
                if name.startswith("plain"):
                    n = plain_loop(sampler.model, sampler.tokenizer, prompts, args.batch_size, params)
                else:
                    n = ours(sampler, problems, args.k, params, folder)
                times[name].append(n / (time.perf_counter() - t))
    base = sum(times["plain model.generate loop"]) / 2
    for name, rates in times.items():
        mean = sum(rates) / len(rates)
        print(f"{name:<28} {mean:8.0f} samples/s  ({', '.join(f'{r:.0f}' for r in rates)})  ratio {mean / base:.2f}x")


if __name__ == "__main__":
    main()
