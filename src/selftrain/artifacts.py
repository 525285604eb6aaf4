"""Run folders and files: layout, stage fingerprints, atomic writes, JSON lines, resume.

A run is one folder. Each stage of each iteration writes its outputs under it and then a
small marker, `<stage>.done.json`, holding the stage's fingerprint (a hash of its config
and of its inputs' fingerprints), its wall seconds and a few counts. The marker is written
last and atomically, so a stage is either done (marker present, fingerprint equal) or
redone from its start. Long stages (sampling) also keep a shard journal, so a run killed
in the middle of one resumes at the first unfinished shard.

A rerun of the same command therefore skips every finished stage, and a changed config
redoes exactly the stages whose fingerprint it changes, and everything downstream of them.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import gzip
import hashlib
import importlib
import inspect
import json
import os
import shutil
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selftrain.errors import RunLockedError, TaskDataError


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (dict key order does not matter).

    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    True
    >>> fingerprint("x") == fingerprint("y")
    False
    """
    text = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    """Sets in sorted order (their iteration order changes between processes), else `str`."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=_stable_repr)
    return str(value)


def describe(obj: Any) -> Any:
    """What stands for a verifier, judge, filter or rule in a fingerprint: its settings (an
    object's own `describe()`; a partial's arguments) and its code (`code_fingerprint`: the
    function or class and everything it reaches by name). Never where its code sits: moving
    a function redoes nothing; changing what it, or anything it calls, does redoes what
    depends on it (CONTRIBUTING, "Fingerprints").

    >>> def double(x):
    ...     return 2 * x
    >>> describe(double)["function"], describe(functools.partial(double, 3))["args"]
    ('double', [3])
    >>> describe(len)
    {'function': 'len'}
    """
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "describe") and not isinstance(obj, type):
        settings = obj.describe()
        code = code_fingerprint(type(obj), modules=getattr(obj, "covers", ()))
        return {**settings, "code": code} if isinstance(settings, dict) else {"settings": settings, "code": code}
    if isinstance(obj, functools.partial):
        return {"function": describe(obj.func), "args": list(obj.args), "keywords": dict(obj.keywords)}
    if inspect.ismethod(obj):
        return {"method": obj.__name__, "of": describe(obj.__self__)}
    if inspect.isbuiltin(obj):
        return {"function": obj.__name__}
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return {"function": obj.__name__, "code": code_fingerprint(obj)}
    raise TypeError(f"{type(obj).__name__} cannot stand in a fingerprint: give it a describe() method that returns "
                    "its kind and settings")


@functools.cache
def _installed() -> tuple[str, ...]:
    import sysconfig

    return tuple(sorted({str(Path(sysconfig.get_paths()[k]).resolve()) + os.sep
                         for k in ("stdlib", "platstdlib", "purelib", "platlib")}))


def _own_code(module_name: str | None) -> bool:
    """Whether a module's code counts in fingerprints: selftrain's own, and code of your own
    (a file or module outside the Python installation); not the standard library or an
    installed package (their versions are the environment's, not the run's)."""
    import sys

    if not module_name or module_name == "builtins":
        return False
    if module_name in ("__main__", "selftrain") or module_name.startswith("selftrain."):
        return True
    path = getattr(sys.modules.get(module_name), "__file__", None)
    if not path:
        return False
    resolved = str(Path(path).resolve())
    return not resolved.startswith(_installed())


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _source_of(obj: Any) -> str:
    """The code of a function or class as its syntax tree, without docstrings or comments
    (editing those redoes nothing); a lambda or code without a file: its bytecode."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        return ast.dump(_strip_docstrings(ast.parse(source)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() if code is not None else repr(obj)


def _simple(value: Any) -> bool:
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return True
    if isinstance(value, (tuple, list, frozenset, set)):
        return len(value) <= 10_000 and all(_simple(v) for v in value)
    if isinstance(value, dict):
        return len(value) <= 10_000 and all(_simple(k) and _simple(v) for k, v in value.items())
    return False


def _stable_repr(value: Any) -> str:
    """`repr` of a simple value, with sets in sorted order: a set of strings iterates in an
    order that changes from one process to the next (`PYTHONHASHSEED`), so its plain repr
    would redo a resumed run's stages.

    >>> _stable_repr(frozenset({"b", "a"})), _stable_repr({"k": {2, 1}})
    ("frozenset(['a', 'b'])", "{'k': set([1, 2])}")
    """
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}([{', '.join(sorted(_stable_repr(v) for v in value))}])"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_stable_repr(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_stable_repr(k)}: {_stable_repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


def code_fingerprint(*objs: Any, modules: Sequence[str] = ()) -> str:
    """A hash of the code of `objs` (functions, classes, methods, partials) and of every
    function, class and constant they reach by name, transitively, in selftrain's code and
    your own; each counted as its syntax tree, so a docstring or comment edit changes
    nothing and a code edit anywhere along the calls changes the hash. `modules` adds whole
    modules the objects reach other than by name (a worker started as `python -m ...`).

    >>> def helper(x):
    ...     return x + 1
    >>> def rule(x):
    ...     return helper(x) * 2
    >>> a = code_fingerprint(rule)
    >>> def helper(x):  # the callee changes: so does the rule's fingerprint
    ...     return x + 2
    >>> a != code_fingerprint(rule)
    True
    """
    seen: dict[int, str] = {}
    parts: list[Any] = []
    todo = list(objs)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        if isinstance(obj, functools.partial):
            seen[id(obj)] = "partial"
            parts.append(("partial", [_stable_repr(a) if _simple(a) else type(a).__qualname__ for a in obj.args]))
            todo.append(obj.func)
            todo.extend(a for a in (*obj.args, *obj.keywords.values()) if callable(a))
            continue
        if inspect.ismethod(obj):
            todo.append(obj.__func__)
            continue
        if isinstance(obj, (staticmethod, classmethod)):
            todo.append(obj.__func__)
            continue
        if isinstance(obj, property):
            todo.extend(f for f in (obj.fget, obj.fset) if f is not None)
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            if callable(obj) and not inspect.isbuiltin(obj) and _own_code(type(obj).__module__):
                todo.append(type(obj))  # an instance that is called: its class
            continue
        if not _own_code(getattr(obj, "__module__", None)):
            continue
        seen[id(obj)] = f"{obj.__module__}.{obj.__qualname__}"
        parts.append((seen[id(obj)], _source_of(obj)))
        if inspect.isclass(obj):
            todo.extend(b for b in obj.__bases__ if b is not object)
            todo.extend(v for v in vars(obj).values()
                        if inspect.isfunction(v) or isinstance(v, (staticmethod, classmethod, property)))
            continue
        todo.extend(_reached(obj, parts))
    for name in modules:
        module = importlib.import_module(name)
        parts.append((name, ast.dump(_strip_docstrings(ast.parse(inspect.getsource(module))))))
    return fingerprint(sorted(parts, key=lambda p: str(p[0])))


def _reached(fn: Any, parts: list[Any]) -> list[Any]:
    """What a function's code names: globals it reads (and attributes of modules it reads
    them from), closure cells and defaults; constants are added to `parts` as values."""
    names: set[str] = set()
    codes = [fn.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if inspect.iscode(c))
    found: list[Any] = []
    scope = fn.__globals__
    for name in sorted(names):
        if name not in scope:
            continue
        value = scope[name]
        if inspect.ismodule(value):
            if _own_code(value.__name__):
                for attr in sorted(names - {name}):
                    if hasattr(value, attr):
                        got = getattr(value, attr)
                        if _simple(got):
                            parts.append((f"{value.__name__}.{attr}", _stable_repr(got)))
                        else:
                            found.append(got)
        elif _simple(value):
            parts.append((f"{fn.__module__}.{name}", _stable_repr(value)))
        else:
            found.append(value)
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if _simple(value):
            parts.append((f"{fn.__qualname__}:closure", _stable_repr(value)))
        else:
            found.append(value)
    for value in fn.__defaults__ or ():
        if _simple(value):
            parts.append((f"{fn.__qualname__}:default", _stable_repr(value)))
    return found


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2**31) derived from parts: each stage, shard and batch draws its own.

    >>> derive_seed(0, "iter-01/generate") == derive_seed(0, "iter-01/generate")
    True
    """
    return int(fingerprint(*parts), 16) % (2**31)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write rows as JSON lines; returns the number of rows."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_rows(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (optionally gzipped); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"no data file at {path}")
    rows = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise TaskDataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise TaskDataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                missing = [k for k in required if k not in row]
                if missing:
                    raise TaskDataError(f"{path}:{lineno}: missing field {missing[0]!r} (has: {', '.join(row)})")
                rows.append(row)
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise TaskDataError(f"{path}: cannot read ({err})") from None
    if not rows:
        raise TaskDataError(f"{path}: no rows")
    return rows


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place, replacing any older one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


class ShardJournal:
    """An append-only JSONL file of rows grouped in shards, for stages that resume midway.

    Rows of a shard are appended, then a `{"_shard": i}` line closes the shard and the file
    is fsynced. On reopening, rows after the last closing line (a shard cut short by a
    kill) are dropped, so each shard counts exactly once.
    """

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[int, list[dict[str, Any]]] = {}
        if path.exists():
            self._recover()

    def _recover(self) -> None:
        good_bytes = 0
        pending: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a line cut short by a kill
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError:
                    break
                if isinstance(row, dict) and set(row) == {"_shard"}:
                    self.done[int(row["_shard"])] = pending
                    pending = []
                    good_bytes = f.tell()
                else:
                    pending.append(row)
        with open(self.path, "r+b") as f:
            f.truncate(good_bytes)

    def append(self, shard: int, rows: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.write(json.dumps({"_shard": shard}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[shard] = rows

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class StageRecord:
    """What a finished stage leaves behind in its `.done.json` marker: its fingerprint, wall
    seconds, a few counts, and the files it wrote by name (relative to the run folder)."""

    name: str
    fingerprint: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


class RunDir:
    """One run's folder: `RUN/config.yaml`, `RUN/<group>/<files>`, markers, metrics, report."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _marker(self, name: str) -> Path:
        return self.root / f"{name}.done.json"

    def record(self, name: str) -> StageRecord | None:
        """The stage's record if it finished, whatever its fingerprint."""
        marker = self._marker(name)
        if not marker.exists():
            return None
        return StageRecord(**read_json(marker))

    def output(self, name: str, role: str) -> Path | None:
        """The file stage `name` wrote as `role` (from its record), or None when the stage has
        not finished or wrote none by that name."""
        rec = self.record(name)
        if rec is None or role not in rec.outputs:
            return None
        return self.root / rec.outputs[role]

    def _relative(self, outputs: dict[str, Path]) -> dict[str, str]:
        root = self.root.resolve()

        def rel(p: Path) -> str:
            try:
                return str(Path(p).resolve().relative_to(root))
            except ValueError:
                return str(p)

        return {k: rel(p) for k, p in outputs.items()}

    def reusable(self, name: str, fp: str, outputs: dict[str, Path] | None = None) -> tuple[StageRecord | None, str]:
        """The stage's record if its work can be skipped, and why not otherwise: it never
        finished, its fingerprint changed, or its files are not all where this version of the
        stage writes them (moved by an upgrade, or deleted)."""
        old = self.record(name)
        if old is None:
            return None, "new"
        if old.fingerprint != fp:
            return None, "its config or inputs changed"
        if outputs:
            if old.outputs and old.outputs != self._relative(outputs):
                return None, "its files are not where this version writes them"
            missing = [k for k, p in outputs.items() if not Path(p).exists()]
            if missing:
                return None, f"its {', '.join(missing)} file is missing"
        return old, ""

    def stage(
        self,
        name: str,
        fp: str,
        work: Callable[[], dict[str, Any]],
        log: Callable[[str], None] = print,
        outputs: dict[str, Path] | None = None,
    ) -> StageRecord:
        """Run `work` unless stage `name` already finished with fingerprint `fp` (and its
        `outputs`, the files it writes by name, are where they should be).

        `work` writes the stage's outputs (atomically) and returns a few counts for the
        record. Its wall seconds are kept from the run that really did the work, so a
        resumed run reports the time the stage took, not the time to skip it.
        """
        old, why = self.reusable(name, fp, outputs)
        if old is not None:
            log(f"[skip] {name}: done ({old.seconds:.1f}s)")
            return old
        if why != "new":
            log(f"[redo] {name}: {why}")
            self._marker(name).unlink(missing_ok=True)
        log(f"[run]  {name}")
        t0 = time.perf_counter()
        info = work()
        rec = StageRecord(name=name, fingerprint=fp, seconds=round(time.perf_counter() - t0, 3), info=info,
                          outputs=self._relative(outputs or {}))
        write_json(self._marker(name), asdict(rec))
        return rec

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for this process; a second process gets a clear error."""
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.root / ".lock", "w")
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(
                    f"another selftrain process is using {self.root}; wait for it or choose another --out"
                ) from None
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            f.close()
