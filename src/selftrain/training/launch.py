"""Training in several processes: the driver (the `selftrain run` process) starts a training
stage as `torchrun --nproc_per_node N -m selftrain.training.launch JOB` (or `accelerate launch
--config_file FILE ...` for FSDP2, DeepSpeed ZeRO or several machines), each process reading
the stage's rows from the run folder. TRL's trainers run under those launchers as they do
anywhere (DDP over NCCL on GPUs, over gloo on CPUs); rank 0 writes the model folder
atomically and the stage's result, the others wait for it.

Each process gets a global batch's share (`split_batches`: the batches are the ones one
process would draw, cut in N), so N processes train on the same batches, at the same
learning rate, as one process with the same `batch_size` (tests/test_launch.py). Fault
points, the run log and progress work as in one process: rank 0 writes its step to
`<model>.tmp/progress.json`, which the driver's bar follows; every process's output goes to
`RUN/logs/<group>-train.log`; a process that dies fails the stage, and a rerun redoes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from selftrain import ui
from selftrain.artifacts import read_json, write_json, write_jsonl
from selftrain.config import LaunchConfig
from selftrain.errors import SelftrainError


class TrainingFailed(SelftrainError):
    """A training stage's processes did not finish."""


def command(launch: LaunchConfig, job: Path) -> list[str]:
    """The launcher's command line for a job file."""
    if launch.config_file:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", launch.config_file,
                "--num_processes", str(launch.processes), *launch.launcher_args, "-m", "selftrain.training.launch", str(job)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(launch.processes),
            *launch.launcher_args, "-m", "selftrain.training.launch", str(job)]


def launched(kind: str, start: str | Path, rows: list[dict[str, Any]], cfg, out: Path, seed: int, log: Path,
             **kwargs: Any) -> dict[str, Any]:
    """Train (`kind`: sft or dpo) in `cfg.launch.processes` processes; returns what the
    single-process training returns."""
    job = out.with_name(out.name + ".job.json")
    result = out.with_name(out.name + ".result.json")
    rows_path = out.with_name(out.name + ".rows.jsonl")
    result.unlink(missing_ok=True)
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    write_jsonl(rows_path, rows)
    write_json(job, {"kind": kind, "start": str(start), "rows": str(rows_path), "cfg": cfg.model_dump(mode="json"),
                     "out": str(out), "seed": seed, "result": str(result), "kwargs": kwargs})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // cfg.launch.processes)), "PYTHONUNBUFFERED": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    progress = out.with_name(out.name + ".tmp") / "progress.json"
    with open(log, "a", encoding="utf-8") as f, ui.Bar(f"{out.parent.name} train ({cfg.launch.processes} processes)", None) as bar:
        proc = subprocess.Popen(command(cfg.launch, job), stdout=f, stderr=subprocess.STDOUT, env=env)
        shown = 0
        while proc.poll() is None:
            time.sleep(0.5)
            try:
                step = read_json(progress)
            except (OSError, ValueError):
                continue
            if bar.task is not None:
                bar.progress.update(bar.task, total=step["max_steps"])
            bar.advance(step["step"] - shown)
            shown = step["step"]
    if proc.returncode != 0 or not result.is_file():
        raise TrainingFailed(f"training {out.parent.name} in {cfg.launch.processes} processes ended with exit "
                             f"{proc.returncode}; its log: {log}")
    for path in (job, rows_path):
        path.unlink(missing_ok=True)
    return read_json(result)


def main(job_path: str) -> None:
    """One process of a launched training: the job's training, rank 0 writing its result."""
    from selftrain.config import DPOConfig, TrainConfig
    from selftrain.models import set_torch_threads
    from selftrain.training.dpo import train_dpo
    from selftrain.training.sft import is_main_process, train_sft

    set_torch_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    job = json.loads(Path(job_path).read_text())
    rows = [json.loads(line) for line in Path(job["rows"]).read_text().splitlines() if line.strip()]
    cfg = (DPOConfig if job["kind"] == "dpo" else TrainConfig).model_validate({**job["cfg"], "launch": None})
    train = train_dpo if job["kind"] == "dpo" else train_sft
    info = train(job["start"], rows, cfg, Path(job["out"]), job["seed"], **job["kwargs"])
    if is_main_process():
        write_json(Path(job["result"]), info)


if __name__ == "__main__":
    main(sys.argv[1])
