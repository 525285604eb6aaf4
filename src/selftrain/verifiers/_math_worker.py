"""A math-verify worker process: reads (reference, answer) pairs, writes verdicts.

Started by `selftrain.verifiers.math.MathVerifyPool` as `python -m selftrain.verifiers._math_worker`;
frames on stdin and stdout are a 4-byte length and a pickle (both ends are selftrain).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys


def _read(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send(fd: int, obj) -> None:
    data = pickle.dumps(obj)
    os.write(fd, len(data).to_bytes(4, "big") + data)


def receive(fd: int):
    head = _read(fd, 4)
    if head is None:
        return None
    body = _read(fd, int.from_bytes(head, "big"))
    return None if body is None else pickle.loads(body)


def judge(gold: str, answer: str) -> tuple[bool | None, str]:
    from math_verify import parse, verify

    g = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    a = parse("\\boxed{" + answer + "}", parsing_timeout=None)
    if not g:
        return None, "could not parse the reference answer"
    if not a:
        return False, f"could not parse the answer {answer!r}"
    return bool(verify(g, a, timeout_seconds=None)), "math-verify"


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns that its own timeouts are off: ours are on
    import math_verify  # noqa: F401 - import before saying ready, so deadlines measure work only

    out = sys.stdout.fileno()
    send(out, "ready")
    while True:
        pair = receive(sys.stdin.fileno())
        if pair is None:
            return
        try:
            send(out, judge(*pair))
        except Exception as err:  # noqa: BLE001 - a verdict of None, with the reason
            send(out, (None, f"math-verify failed: {type(err).__name__}"))


if __name__ == "__main__":
    main()
