"""1,000 requests through `OpenAISampler` to a local server that injects faults, a kill -9
in the middle, and a rerun: is every request answered or listed as failed, once?

    python benchmarks/openai_faults.py [--n 1000] [--rate 0.3] [--permanent 0.01]

The server (`selftrain serve`'s `ModelServer`) runs a tiny transformers model built here
with a chat template; each attempt of a request gets a fault with probability `--rate`
(429 with Retry-After, 500, a reply slower than the client's timeout, truncated JSON, a
dropped connection) and a fraction `--permanent` of requests fail on every attempt. A
client process is killed with SIGKILL once a third of the answers are in its cache, then
the same command is run again in a fresh process to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PARAMS_ARGS = dict(temperature=1.0, max_new_tokens=8)
CLIENT = """
import json, sys
from selftrain.samplers.base import Failed, SamplingParams, generate_or_fail
from selftrain.samplers.openai import OpenAISampler
url, cache, failed, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = OpenAISampler(url, "tiny", cache=cache, failed_path=failed, timeout=1.0, backoff=0.05, max_backoff=1.0,
                  max_retries=6, max_concurrency=32, progress=False)
out = generate_or_fail(s, [f"request {i}" for i in range(n)], SamplingParams(temperature=1.0, max_new_tokens=8), seed=0)
print(json.dumps({"results": [None if isinstance(r, Failed) else r for r in out], "stats": vars(s.last_stats)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--permanent", type=float, default=0.01)
    args = parser.parse_args()

    from selftrain.config import TinyModelConfig
    from selftrain.samplers.hf import HFSampler
    from selftrain.samplers.openai import ApiRequest, OpenAISampler
    from selftrain.samplers.serve import Faults, ModelServer, request_key
    from selftrain.training.tiny import save_tiny

    work = Path(tempfile.mkdtemp(prefix="openai-faults-"))
    save_tiny(work / "model", TinyModelConfig(arch="llama", hidden_size=32, num_layers=1, num_heads=2,
                                              intermediate_size=64, max_length=128), seed=0, chat=True)
    cache, failed = work / "cache.sqlite", work / "failed.jsonl"
    faults = Faults(rate=args.rate, permanent=args.permanent, retry_after=0.2, slow_seconds=1.5)
    prompts = [f"request {i}" for i in range(args.n)]
    from selftrain.samplers.base import SamplingParams

    PARAMS = SamplingParams(**PARAMS_ARGS)
    cmd = [sys.executable, "-c", CLIENT, "", str(cache), str(failed), str(args.n)]

    with ModelServer(HFSampler(work / "model", batch_size=64), faults=faults, batch_size=32) as server:
        cmd[3] = server.url
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        while _count(cache) < args.n // 3 and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = _count(cache)
        probe = OpenAISampler(server.url, "tiny", cache=cache, progress=False)
        cached_at_kill = {p for p in prompts if probe.cache.get(probe.key(ApiRequest(p, PARAMS, 0))) is not None}
        probe.cache.close()
        first_run = [_user(b) for _, b in server.arrivals]
        keys = {_user(b): request_key(b) for _, b in server.arrivals}
        server.arrivals.clear()
        rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        second_run = [_user(b) for _, b in server.arrivals]
        keys.update({_user(b): request_key(b) for _, b in server.arrivals})
        faults_sent = dict(server.faults_sent)

    out = json.loads(rerun.stdout.strip().splitlines()[-1])
    results, stats = out["results"], out["stats"]
    failed_rows = [json.loads(line) for line in failed.read_text().splitlines()]
    answered = [p for p, r in zip(prompts, results) if r is not None]
    listed = [r["prompt"] for r in failed_rows]
    lost = set(prompts) - set(answered) - set(listed)
    print(f"requests: {args.n}; faults injected {sum(faults_sent.values())} ({faults_sent}); {wall:.1f} s in all")
    print(f"killed (SIGKILL) with {at_kill} answers cached; first process sent {len(first_run)} attempts")
    print(f"rerun: {stats['cached']} from the cache, {len(set(second_run))} distinct requests sent "
          f"({len(second_run)} attempts with retries), {stats['retried']} retries")
    print(f"answered {len(answered)}, listed as failed {len(listed)}, lost {len(lost)}, "
          f"answered twice {len(answered) - len(set(answered))}, both answered and failed {len(set(answered) & set(listed))}")
    print(f"rerun sent exactly the requests the cache lacked: {set(second_run) == set(prompts) - cached_at_kill} "
          f"({args.n - len(cached_at_kill)} missing, {len(set(second_run))} sent)")
    permanent = {p for p in prompts if faults.is_permanent(keys[p])}
    print(f"failed rows: {len(listed)}, of which set to fail on every attempt {len(set(listed) & permanent)} "
          f"(of {len(permanent)} so set); attempts per failed row {Counter(r['attempts'] for r in failed_rows)}; "
          f"errors {Counter(r['error'][:3] for r in failed_rows)}")


def _user(body: dict) -> str:
    return body["messages"][-1]["content"]


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


if __name__ == "__main__":
    main()
