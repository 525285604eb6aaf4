"""The worker process of a verifier of your own: imports the function, then answers batches.

Started by `selftrain.verifiers.function.FunctionVerifier` as
`python -m selftrain.verifiers._function_worker TARGET`. Frames (a 4-byte length and a
pickle) come on stdin and go out on the file descriptor that was stdout; the function's own
prints go to stderr, so they cannot break a frame.
"""

from __future__ import annotations

import os
import sys
import traceback


def main() -> None:
    from selftrain.plugins import load_object
    from selftrain.verifiers._math_worker import receive, send

    out = os.dup(1)
    os.dup2(2, 1)  # the user's prints: to stderr
    try:
        fn = load_object(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "verifier")
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
        send(out, ("error", f"{type(err).__name__}: {err}"))
        return
    send(out, ("ready", None))
    while True:
        request = receive(0)
        if request is None:
            return
        prompts, completions, columns = request
        try:
            send(out, ("ok", fn(prompts, completions, **columns)))
        except Exception as err:  # noqa: BLE001 - the user's function failed on this batch
            where = traceback.extract_tb(err.__traceback__)[-1]
            send(out, ("raised", f"{type(err).__name__}: {err} ({os.path.basename(where.filename)}:{where.lineno})"))
        except BaseException as err:  # SystemExit, KeyboardInterrupt from user code: the batch fails, the worker goes on
            send(out, ("raised", f"{type(err).__name__}: {err}"))


if __name__ == "__main__":
    main()
