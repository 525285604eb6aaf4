"""Extensions by name (`Registry`: methods, tasks, sampler backends, verifiers) and code of
your own, named by import path: `"my_checks:sql_matches"` (a module importable from
the working folder or the installed packages) or `"path/to/checks.py:sql_matches"` (a file).

`load_object` imports it and says, naming the setting, what is wrong when it cannot; in
fingerprints it stands by its code (`artifacts.code_fingerprint`: callees of your own included).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from selftrain.errors import ConfigError


def is_import_path(text: str) -> bool:
    """Whether a setting names code (`module:attr` or `file.py:attr`) rather than a built-in.

    >>> is_import_path("math"), is_import_path("checks.py:sorted_right"), is_import_path("my.checks:f")
    (False, True, True)
    """
    module, sep, attr = text.rpartition(":")
    return bool(sep and module and attr.isidentifier())


def _module(module: str, setting: str):
    if module.endswith(".py"):
        path = Path(module).resolve()
        if not path.is_file():
            raise ConfigError(f"{setting}: no file {module} (from {Path.cwd()})")
        name = f"selftrain_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # the modules beside it import as they would beside a script
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as err:
            del sys.modules[name]
            raise ConfigError(f"{setting}: importing {module} failed: {type(err).__name__}: {err}") from None
        return mod
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a module beside the config, as `python -m` would find it
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigError(f"{setting}: cannot import {module!r} ({err}); give `package.module:name`, importable from "
                          f"{Path.cwd()}, or `path/to/file.py:name`") from None
    except Exception as err:
        raise ConfigError(f"{setting}: importing {module} failed: {type(err).__name__}: {err}") from None


def load_object(target: str, setting: str) -> Any:
    """The object `target` names (`module:attr` or `file.py:attr`); a ConfigError naming
    `setting` when it cannot be had."""
    if not is_import_path(target):
        raise ConfigError(f"{setting}: {target!r} is not an import path (`module:name` or `path/to/file.py:name`)")
    module, _, attr = target.rpartition(":")
    mod = _module(module, setting)
    if not hasattr(mod, attr):
        found = sorted(n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n)))
        raise ConfigError(f"{setting}: {module} has no {attr!r} (it has: {', '.join(found) or 'nothing callable'})")
    return getattr(mod, attr)


def check_reward_function(target: str, setting: str) -> None:
    """Refuse, naming `setting`, a verifier of your own that cannot be imported or given a
    batch: TRL's reward signature, `fn(prompts, completions, **columns)`: two positional
    arguments, and the columns as keywords (`**kwargs`, or the names of the ones it uses)."""
    fn = load_object(target, setting)
    if not callable(fn):
        raise ConfigError(f"{setting}: {target} is a {type(fn).__name__}, not a function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin: called as it is
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ConfigError(f"{setting}: {target}{sig} must take (prompts, completions, **columns), TRL's reward signature")


T = TypeVar("T")


class Registry(Generic[T]):
    """One kind of extension (methods, tasks, sampler backends, verifiers), found by name the
    same way for each: a built-in (a name -> import path table, imported on first use), one
    registered in this process (`register`), an installed package's entry point (group
    `selftrain.<kind>s`: methods, tasks, backends, verifiers), or, for a name that is an import path, your own code
    (`my_module:Name`, `path/to/file.py:Name`). `check(obj, name)` refuses what is not of the
    kind, naming the setting.

    >>> colours = Registry("colour", {"red": "builtins:str"}, setting="colour")
    >>> colours.get("red") is str, colours.names()
    (True, ['red'])
    >>> colours.register("blue", int) is int and colours.get("blue") is int
    True
    """

    def __init__(self, kind: str, builtin: dict[str, str], setting: str,
                 check: Callable[[Any, str], T] | None = None, aliases: dict[str, str] | None = None, group: str = ""):
        self.kind, self.builtin, self.setting, self.check = kind, dict(builtin), setting, check
        self.group = group or f"selftrain.{kind}s"
        self.aliases = dict(aliases or {})
        self._registered: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Make `obj` available by `name` in this process (it wins over a built-in of that name)."""
        self._registered[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def _installed(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every name known without an import path: built-ins, aliases, registered, installed."""
        return sorted(set(self.builtin) | set(self.aliases) | set(self._registered) | set(self._installed()))

    def local_only(self, name: str) -> bool:
        """Whether `name` is known in this process alone (registered here, not a built-in, an
        entry point or an import path a fresh process could load)."""
        return name in self._registered and name not in self.builtin and name not in self.aliases \
            and not is_import_path(name) and name not in self._installed()

    def known(self, name: str) -> bool:
        return name in self._registered or name in self.builtin or name in self.aliases or is_import_path(name) \
            or name in self._installed()

    def get(self, name: str, setting: str | None = None) -> T:
        """What `name` stands for; a ConfigError naming the setting (and the known names) when nothing does."""
        setting = setting or self.setting
        name = self.aliases.get(name, name)
        if name in self._registered:
            return self._registered[name]
        if name in self.builtin:
            obj = load_object(self.builtin[name], setting)
        else:
            installed = self._installed()
            if name in installed:
                obj = installed[name].load()
            elif is_import_path(name):
                obj = load_object(name, setting)
            else:
                raise ConfigError(f"{setting}: unknown {self.kind} {name!r} (known: {', '.join(self.names())}; or one of "
                                  f"your own by import path: `my_module:Name`, `path/to/file.py:Name`)")
        return self.check(obj, name) if self.check else obj


# ---------------------------------------------------------------- code of your own in a worker process


def _read(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send(fd: int, obj: Any) -> None:
    """One frame to a worker (or its parent): a 4-byte length and a pickle (both ends are selftrain)."""
    data = pickle.dumps(obj)
    os.write(fd, len(data).to_bytes(4, "big") + data)


def receive(fd: int) -> Any:
    """The next frame, or None when the other end has gone."""
    head = _read(fd, 4)
    if head is None:
        return None
    body = _read(fd, int.from_bytes(head, "big"))
    return None if body is None else pickle.loads(body)


class Worker:
    """A process of its own that answers requests: by default `python -m selftrain.plugins`,
    which loads `target` (an import path; called once with `args` when given, to make the
    function) and applies it to each request. Every worker speaks one framing and one
    convention: "ready" once, then ("ok", result) or ("raised", "Error: message (file:line)")
    per request. A request past its deadline, or a worker that dies, ends the process; the
    caller starts another (`call` says "timeout" or "died")."""

    def __init__(self, target: str = "", setting: str = "worker", args: tuple = (), module: str = "selftrain.plugins",
                 ready_timeout: float = 120.0):
        import subprocess

        command = [sys.executable, "-m", module] + ([target, setting, json.dumps(list(args))] if target else [])
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        kind, detail = self._reply(ready_timeout)
        if kind != "ready":
            self.stop()
            raise ConfigError(f"{setting}: the worker process could not load {target or module}: {detail}")

    def fileno(self) -> int:
        """The descriptor its replies arrive on (to `select` over several workers)."""
        return self.proc.stdout.fileno()

    def send(self, request: Any) -> None:
        send(self.proc.stdin.fileno(), request)

    def reply(self, timeout: float | None) -> tuple[str, Any]:
        """The next reply: ("ok", result), ("raised", detail), ("timeout", None) when none came
        in time, ("died", exit code) when the process has gone."""
        return self._reply(timeout)

    def _reply(self, timeout: float | None) -> tuple[str, Any]:
        import select

        fd = self.proc.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return "timeout", None
        got = receive(fd)
        if got is None:
            return "died", self.proc.wait()
        return got if isinstance(got, tuple) else (got, None)

    def call(self, request: Any, timeout: float | None) -> tuple[str, Any]:
        """("ok", result), ("raised", detail), or ("timeout", None) / ("died", exit code), after
        which this worker is stopped."""
        try:
            send(self.proc.stdin.fileno(), request)
        except (BrokenPipeError, OSError):
            self.stop()
            return "died", self.proc.returncode
        kind, detail = self._reply(timeout)
        if kind in ("timeout", "died"):
            self.stop()
        return kind, detail

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def failure(err: BaseException) -> str:
    """What raised, and where in your code: `ValueError: bad row (checks.py:12)`."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def serve(target: str, setting: str, args: list) -> None:
    """The loop of a `Worker` process: load the function, then answer each request (a tuple of
    positional arguments, or `(args, kwargs)`) with ("ok", result) or ("raised", detail).
    The function's own prints go to stderr, so they cannot break a frame."""
    out = os.dup(1)
    os.dup2(2, 1)
    try:
        fn = load_object(target, setting)
        if args:
            fn = fn(*args)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
        send(out, ("error", failure(err)))
        return
    send(out, ("ready", None))
    while True:
        request = receive(0)
        if request is None:
            return
        positional, keywords = request if isinstance(request, tuple) and len(request) == 2 and isinstance(request[1], dict) \
            else (request, {})
        try:
            send(out, ("ok", fn(*positional, **keywords)))
        except Exception as err:  # noqa: BLE001 - your function failed on this request
            send(out, ("raised", failure(err)))
        except BaseException as err:  # SystemExit, KeyboardInterrupt from your code: the request fails, the worker goes on
            send(out, ("raised", f"{type(err).__name__}: {err}"))


class Guarded:
    """A function of your own applied to items in batches in a `Worker`, each batch with a
    deadline, so that whatever it does costs only its own items: a batch that raises, dies or
    times out is cut in halves and each half tried again (bisection), down to the single
    items that fail; every other item gets its value. `call(items)` -> one (kind, value) per
    item: ("ok", its value), ("raised", detail), ("timeout", seconds), ("died", exit code).
    `apply(batch)` turns a batch of items into the worker's request; the function must
    return one value per item (`shape` says what else it returned)."""

    def __init__(self, target: str, setting: str, timeout: float, batch_size: int, args: tuple = (),
                 request: Callable[[list], Any] = lambda batch: (batch,)):
        self.target, self.setting, self.timeout, self.batch_size, self.args = target, setting, timeout, batch_size, args
        self.request = request
        self._worker: Worker | None = None

    def __getstate__(self) -> dict[str, Any]:  # sent to Ray tasks without its worker process
        return {**self.__dict__, "_worker": None}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _call(self, batch: list) -> tuple[str, Any]:
        if self._worker is None or not self._worker.alive:
            self._worker = Worker(self.target, self.setting, self.args)
        kind, detail = self._worker.call(self.request(batch), self.timeout)
        if kind in ("timeout", "died"):
            self._worker = None
        return kind, (self.timeout if kind == "timeout" else detail)

    def _batch(self, batch: list) -> list[tuple[str, Any]]:
        kind, detail = self._call(batch)
        if kind == "ok":
            if not isinstance(detail, (list, tuple)) or len(detail) != len(batch):
                got = f"{len(detail)} values" if isinstance(detail, (list, tuple)) else f"a {type(detail).__name__}"
                return [("shape", f"{got} for {len(batch)}")] * len(batch)
            return [("ok", v) for v in detail]
        if len(batch) == 1:
            return [(kind, detail)]
        half = len(batch) // 2
        return self._batch(batch[:half]) + self._batch(batch[half:])

    def __call__(self, items: list) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for start in range(0, len(items), self.batch_size):
            out += self._batch(items[start:start + self.batch_size])
        return out


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else [])
