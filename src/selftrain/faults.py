"""Fault injection: kill this process with SIGKILL at a named point, for resume tests.

`SELFTRAIN_KILL_AT=iter-01/samples.jsonl:shard1,iter-02/train:step2` makes a run die
exactly there, as `kill -9` would, so a test can check that resuming loses nothing and
counts nothing twice. Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    if name in os.environ.get("SELFTRAIN_KILL_AT", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
