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


NODE_FLAGS = ("--nnodes", "--node_rank", "--node-rank", "--master_addr", "--master-addr", "--master_port", "--master-port",
              "--rdzv_endpoint", "--rdzv-endpoint", "--rdzv_backend", "--rdzv-backend", "--rdzv_id", "--rdzv-id")
"""torchrun's flags of a job over several machines: `--standalone` would override them all
(torch/distributed/run.py: it sets rdzv_backend c10d, rdzv_endpoint localhost:0 and a random
rdzv_id, so each machine would wait alone)."""


def command(launch: LaunchConfig, job: Path, job_id: str = "") -> list[str]:
    """The launcher's command line for a job file (the same on every machine of the job:
    `job_id` names its rendezvous)."""
    if launch.config_file:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", launch.config_file,
                "--num_processes", str(launch.world), *launch.launcher_args, "-m", "selftrain.training.launch", str(job)]
    head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(launch.processes)]
    if launch.nodes > 1:
        head += ["--nnodes", str(launch.nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", launch.rdzv_endpoint,
                 "--rdzv_id", job_id or "selftrain"]
    elif not any(arg.split("=")[0] in NODE_FLAGS for arg in launch.launcher_args):
        head.append("--standalone")
    return [*head, *launch.launcher_args, "-m", "selftrain.training.launch", str(job)]


def job_id(job: Path) -> str:
    """A job's rendezvous name, the same on every machine that reads its file."""
    import hashlib

    return hashlib.sha256(job.read_bytes()).hexdigest()[:12]


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
    with open(log, "a", encoding="utf-8") as f, ui.Bar(f"{out.parent.name} train ({cfg.launch.world} processes)", None) as bar:
        proc = subprocess.Popen(command(cfg.launch, job, job_id(job)), stdout=f, stderr=subprocess.STDOUT, env=env)
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
        raise TrainingFailed(f"training {out.parent.name} in {cfg.launch.world} processes ended with exit "
                             f"{proc.returncode}; its log: {log}")
    for path in (job, rows_path):
        path.unlink(missing_ok=True)
    return read_json(result)


def follow(run_dir: Path, jobs: int | None = None, idle: float | None = None, poll: float = 0.5,
           log: Path | None = None) -> int:
    """What each machine but the run's own runs (`selftrain node RUN`): wait for the training
    stages the run launches over several machines (their job files in the shared run folder),
    join each with the same command as the run's machine (its own processes, the same
    rendezvous), and stop when the run has finished (its metrics.json written after this
    began), after `jobs` stages, or after `idle` seconds without one. Returns the stages joined."""
    start, joined, seen, last = time.time(), 0, set(), time.time()
    run_dir = Path(run_dir)
    while True:
        for job in sorted(run_dir.rglob("*.job.json")):
            try:
                spec = json.loads(job.read_text())
                key = (str(job), job_id(job))
            except (OSError, ValueError):
                continue
            launch = LaunchConfig.model_validate(spec["cfg"]["launch"])
            if key in seen or launch.nodes < 2:
                continue
            seen.add(key)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // launch.processes)), "PYTHONUNBUFFERED": "1"}
            ui.say(f"joining {job.parent.name}'s training ({launch.nodes} machines x {launch.processes} processes)")
            with open(log or job.with_suffix(".node.log"), "a", encoding="utf-8") as f:
                code = subprocess.run(command(launch, job, key[1]), stdout=f, stderr=subprocess.STDOUT, env=env).returncode
            ui.say(f"{job.parent.name}: {'done' if code == 0 else f'failed (exit {code})'}")
            joined, last = joined + 1, time.time()
            if jobs is not None and joined >= jobs:
                return joined
        finished = run_dir / "metrics.json"
        if (finished.is_file() and finished.stat().st_mtime > start) or (idle is not None and time.time() - last > idle):
            return joined
        time.sleep(poll)


def main(job_path: str) -> None:
    """One process of a launched training: the job's training, rank 0 writing its result."""
    from selftrain.config import DPOConfig, TrainConfig
    from selftrain.models import set_torch_threads
    from selftrain.training.dpo import train_dpo
    from selftrain.training.sft import train_sft
    from selftrain.training.trainer import is_main_process

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
