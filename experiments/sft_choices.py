"""SFT on the human data alone, with config overrides: the quick experiment behind the
demo's choices of layout, architecture and steps (docs/rest-em.md lists the results).

    python experiments/sft_choices.py NAME '{"seed": 1, "model": {"tiny": {"arch": "llama"}}}'

Builds the tiny model, trains it on the human data with the given overrides of the run
config, and prints greedy test accuracy overall and per bucket, training seconds and
the final training loss.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from selftrain.methods import parse_config
from selftrain.metrics import accuracy_by_bucket
from selftrain.models import set_torch_threads
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.hf import HFSampler
from selftrain.tasks import build_task
from selftrain.training.sft import train_sft
from selftrain.training.tiny import save_tiny


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    name, overrides = sys.argv[1], json.loads(sys.argv[2])
    cfg = parse_config(overrides)
    set_torch_threads(cfg.model.torch_threads)
    task = build_task(cfg.task)
    test = task.test()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_tiny(root / "init", cfg.model.tiny, cfg.seed)
        rows = [{"prompt": p.prompt, "completion": p.solution} for p in task.human()]
        t = time.perf_counter()
        info = train_sft(root / "init", rows, cfg.rest_em.sft, root / "sft", cfg.seed, cfg.model.tiny.max_length)
        seconds = time.perf_counter() - t
        sampler = HFSampler(root / "sft", batch_size=cfg.model.sampler.batch_size)
        out = sampler.generate([p.prompt for p in test], SamplingParams(temperature=0.0, max_new_tokens=cfg.eval.max_new_tokens), 0)
    ok = [s.accepted for s in task.verifier()(test, out)]
    by_bucket = {b: round(a, 3) for b, a in accuracy_by_bucket([p.bucket for p in test], ok).items()}
    print(f"{name} accuracy={sum(ok) / len(ok):.3f} {by_bucket} train {seconds:.0f}s final loss {info.get('final_loss')}")


if __name__ == "__main__":
    main()
