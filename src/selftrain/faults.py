"""Fault injection at named points, for the resume tests.

`SELFTRAIN_KILL_AT=iter-01/samples.jsonl:shard1,iter-02/train:step2` makes a run die
exactly there with SIGKILL, as `kill -9` would, so a test can check that resuming loses
nothing and counts nothing twice. `on(name, action)` runs `action` at a point of this
process instead (a test that kills a worker once a shard is journaled, say). Unset (always,
outside tests) a point does nothing.

The points: `<group>/<file>:shard<j>` after a sampling shard is journaled,
`<group>/train:step<n>` after an optimizer step, `openai:answer<n>` after the n-th answer an
API sampler cached in this process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_ACTIONS: dict[str, Callable[[], None]] = {}


def point(name: str) -> None:
    if name in os.environ.get("SELFTRAIN_KILL_AT", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    action = _ACTIONS.pop(name, None)
    if action is not None:
        action()


@contextmanager
def on(name: str, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` once, when this process reaches the point `name`."""
    _ACTIONS[name] = action
    try:
        yield
    finally:
        _ACTIONS.pop(name, None)
