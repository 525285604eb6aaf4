"""Which solution format and tiny architecture give a model trained on 1-3-digit additions
a chance at longer ones (issue 16, docs/curriculum.md).

    python experiments/length_formats.py [--steps 1500] [--seed 0] [--only reversed-llama,...]

For each candidate (layout x architecture) it builds the tiny model, fine-tunes it on the
same human problems of 1-3 digits (`configs/arithmetic-curriculum.yaml`'s task, with the
candidate's layout), and measures greedy accuracy per size 1..8 and, at 4 and 5 digits,
the share of 8 samples (temperature 0.7) that are right and the share of problems with at
least one right: the curriculum's E-step needs that to be above zero. Prints a table and
writes experiments/results/length_formats-seed<SEED>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from selftrain.methods import parse_config
from selftrain.metrics import accuracy_by_bucket
from selftrain.models import set_torch_threads
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.hf import HFSampler
from selftrain.tasks import build_task
from selftrain.training.sft import train_sft
from selftrain.training.tiny import save_tiny

ROOT = Path(__file__).resolve().parents[1]
# layout, arch, context (tokens), answer tokens
CANDIDATES = {
    "aligned-gpt2": ("aligned", "gpt2", 128, 100),
    "aligned-llama": ("aligned", "llama", 128, 100),
    "reversed-gpt2": ("reversed", "gpt2", 40, 12),
    "reversed-llama": ("reversed", "llama", 40, 12),
    "reversed-nope": ("reversed", "nope", 40, 12),
}


def measure(name: str, steps: int, seed: int, k: int = 8) -> dict:
    layout, arch, context, new_tokens = CANDIDATES[name]
    data = yaml.safe_load((ROOT / "configs" / "arithmetic-curriculum.yaml").read_text())
    data["seed"] = seed
    data["task"]["arithmetic"]["layout"] = layout
    data["model"]["tiny"].update(arch=arch, max_length=context)
    data["rest_em"]["sft"]["steps"] = steps
    cfg = parse_config(data)
    set_torch_threads(cfg.model.torch_threads)
    task = build_task(cfg.task)
    test, grader = task.test(), task.grader()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_tiny(root / "init", cfg.model.tiny, cfg.seed)
        rows = [{"prompt": p.prompt, "completion": p.solution} for p in task.human()]
        t = time.perf_counter()
        train_sft(root / "init", rows, cfg.rest_em.sft, root / "sft", cfg.seed, cfg.model.tiny.max_length)
        seconds = time.perf_counter() - t
        sampler = HFSampler(root / "sft", batch_size=512)
        greedy = sampler.generate([p.prompt for p in test], SamplingParams(temperature=0.0, max_new_tokens=new_tokens), 0)
        hard = [p for p in test if p.bucket in ("4", "5")]
        sampled = sampler.generate([p.prompt for p in hard for _ in range(k)],
                                   SamplingParams(temperature=0.7, max_new_tokens=new_tokens), seed)
    ok = [s.accepted for s in grader(test, greedy)]
    right = [s.accepted for s in grader([p for p in hard for _ in range(k)], sampled)]
    out = {"candidate": name, "layout": layout, "arch": arch, "sft_steps": steps, "train_seconds": round(seconds, 1),
           "greedy_by_size": {b: round(a, 3) for b, a in accuracy_by_bucket([p.bucket for p in test], ok).items()}}
    for size in ("4", "5"):
        idx = [i for i, p in enumerate(hard) if p.bucket == size]
        out[f"sample_right_{size}"] = round(sum(right[i * k + j] for i in idx for j in range(k)) / (k * len(idx)), 3)
        out[f"pass@{k}_{size}"] = round(sum(any(right[i * k:(i + 1) * k]) for i in idx) / len(idx), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(CANDIDATES))
    args = parser.parse_args()
    results = []
    for name in args.only.split(","):
        results.append(measure(name, args.steps, args.seed))
        r = results[-1]
        sizes = " ".join(f"{b}:{a * 100:5.1f}" for b, a in r["greedy_by_size"].items())
        print(f"{name:<16} greedy % {sizes} | 4-digit samples right {r['sample_right_4'] * 100:.1f}% pass@8 {r['pass@8_4'] * 100:.1f}% "
              f"| 5-digit {r['sample_right_5'] * 100:.1f}% / {r['pass@8_5'] * 100:.1f}% | train {r['train_seconds']} s", flush=True)
    out = ROOT / "benchmarks" / "results" / f"length_formats-seed{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
