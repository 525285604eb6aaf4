"""How much of a bfloat16 checkpoint's weights a full fine-tune moves, with float32 master
weights (selftrain's `training.trainer.start_for_training`) and trained in bfloat16 itself
(the same part with `load_model`'s float32 taken away): benchmarks/gpu_check.py's sft-tiny
part, 4 steps at lr 1e-5 (issue 33, item 6).

    python experiments/bf16_master_weights.py

On a 2-core CPU, two runs: 0.4353 and 0.4372 of the weights moved with float32 master
weights, 0.1199 and 0.1199 in bfloat16.
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def main() -> None:
    import gpu_check as g

    import selftrain.training.trainer as trainer
    from selftrain.config import TrainConfig
    from selftrain.training.sft import train_sft

    load_model = trainer.load_model
    for master in (True, False):
        trainer.load_model = load_model if master else (lambda start, dtype=None, **kw: load_model(start, **kw))
        with tempfile.TemporaryDirectory() as tmp:
            start = g.build("tiny", Path(tmp) / "start")
            rows = [{"prompt": "x" * 200, "completion": "y" * 56} for _ in range(32)]
            cfg = TrainConfig(steps=4, batch_size=8, learning_rate=1e-5, warmup_steps=0,
                              lr_scheduler="constant_with_warmup", logging_steps=1, group_by_length=False)
            train_sft(start, rows, cfg, Path(tmp) / "out", seed=0, max_length=256)
            print(json.dumps({"float32_master": master, "weights_moved": g.moved(start, Path(tmp) / "out")}), flush=True)
    trainer.load_model = load_model


if __name__ == "__main__":
    main()
