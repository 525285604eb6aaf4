"""Ray, for real: a local cluster on this machine, sampler actors, a worker killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import ExitStack

import pytest
import yaml
from engines import trained_tiny

from selftrain import faults
from selftrain.config import RayConfig, SamplerConfig
from selftrain.samplers.base import SamplingParams
from selftrain.stages.generate import sample_shards

ray = pytest.importorskip("ray", reason="the ray extra (README's test set-up installs it)")
pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}
PARAMS = SamplingParams(temperature=1.0, max_new_tokens=60)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("ray"))


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield RayConfig(address="auto", workers=2, resources={"CPU": 1})
    ray.shutdown()


@pytest.fixture(scope="module")
def local_samples(model, tmp_path_factory):
    """The E-step as a local run samples it: one sampler, one thread, shard after shard."""
    from selftrain.models import set_torch_threads
    from selftrain.samplers.hf import HFSampler

    folder, task = model
    before = set_torch_threads(1)  # each Ray worker samples on one thread
    try:
        out = tmp_path_factory.mktemp("local") / "samples.jsonl"
        return sample_shards(HFSampler(folder), task.pool(), 4, PARAMS, out, seed=3, shard_size=16)
    finally:
        set_torch_threads(before)


def _pool(cluster, folder):
    from selftrain.samplers.ray import RaySampler

    return RaySampler(cluster, SamplerConfig(), str(folder))


def test_two_workers_sample_what_a_local_run_samples(model, cluster, local_samples, tmp_path):
    folder, task = model
    pool = _pool(cluster, folder)
    try:
        assert len(set(pool.pids())) == 2
        spread = sample_shards(pool, task.pool(), 4, PARAMS, tmp_path / "samples.jsonl", seed=3, shard_size=16)
    finally:
        pool.close()
    assert spread == local_samples
    assert len(local_samples) == 4 * len(task.pool()) and len({s.completion for s in spread}) > 20


def test_a_worker_killed_mid_e_step_loses_nothing_and_counts_nothing_twice(model, cluster, local_samples, tmp_path):
    folder, task = model
    pool = _pool(cluster, folder)
    out = tmp_path / "samples.jsonl"
    victim = pool.pids()[0]
    killed = []

    def kill_the_victim():
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    try:  # once the first shard is journaled (whichever finishes first), with the others sent or still to send
        with ExitStack() as points:
            for j in range(-(-4 * len(task.pool()) // 16)):
                points.enter_context(faults.on(f"{tmp_path.name}/samples.jsonl:shard{j}", kill_the_victim))
            spread = sample_shards(pool, task.pool(), 4, PARAMS, out, seed=3, shard_size=16)
        survivors = pool.pids()
    finally:
        pool.close()
    assert killed == [victim]
    assert victim not in survivors  # the worker was restarted as a new process
    keys = [(s.problem_id, s.index) for s in spread]
    assert len(keys) == len(set(keys)) == 4 * len(task.pool())
    assert spread == local_samples


def test_a_run_with_ray_address_local_killed_or_not_writes_the_metrics_of_a_local_run(model, tmp_path):
    from conftest import TINY

    cfg = json.loads(json.dumps(TINY))
    cfg["rest_em"]["iterations"] = 1
    cfg["rest_em"]["compute_matched_baseline"] = False
    cfg["model"]["torch_threads"] = 1
    metrics = {}
    # local; on Ray; on Ray with the driver killed (SIGKILL) after its E-step's second shard, then resumed
    for name, ray_section, kill in (("local", {}, ""), ("ray", {"address": "local", "workers": 2}, ""),
                                    ("killed", {"address": "local", "workers": 2}, "iter-01/samples.jsonl:shard1")):
        cfg["ray"] = ray_section
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        for attempt, env in enumerate([{**ENV, "SELFTRAIN_KILL_AT": kill}, ENV] if kill else [ENV]):
            log = tmp_path / f"{name}-{attempt}.log"  # a file, not a pipe: Ray's helper processes inherit it
            with open(log, "w") as f:
                proc = subprocess.run([sys.executable, "-m", "selftrain.cli", "run", str(path), "--out", str(tmp_path / name)],
                                      stdout=f, stderr=subprocess.STDOUT, timeout=300, env=env)
            expected = -signal.SIGKILL if kill and attempt == 0 else 0
            assert proc.returncode == expected, log.read_text()[-3000:]
        metrics[name] = [{k: v for k, v in r.items() if k != "seconds"}
                         for r in json.loads((tmp_path / name / "metrics.json").read_text())["rows"]]
    _reap_orphaned_ray_agents()
    assert metrics["ray"] == metrics["local"] == metrics["killed"]
    for name in ("ray", "killed"):
        assert (tmp_path / name / "iter-01" / "samples.jsonl").read_text() == (tmp_path / "local" / "iter-01" / "samples.jsonl").read_text()


def _reap_orphaned_ray_agents() -> None:
    """A driver killed with SIGKILL takes its local cluster down but leaves Ray's dashboard and
    runtime-env agents behind, orphaned (seen with ray 2.60); end them so they do not linger."""
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            name = open(f"/proc/{proc}/cmdline", "rb").read().split(b"\0")[0].decode()
            ppid = int(open(f"/proc/{proc}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == 1 and name in ("ray::DashboardAgent", "ray::RuntimeEnvAgent"):
            os.kill(int(proc), signal.SIGKILL)
