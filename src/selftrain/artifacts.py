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

import fcntl
import functools
import gzip
import hashlib
import inspect
import json
import os
import shutil
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
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
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(obj: Any) -> Any:
    """What stands for a verifier, judge, filter or answer-reading function in a fingerprint:
    the object's own `describe()` (its kind and settings), or, for a plain function, its name
    and a hash of its source. Never where its code sits: moving a function redoes nothing,
    changing what it does redoes what depends on it.

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
        return obj.describe()
    if isinstance(obj, functools.partial):
        return {"function": describe(obj.func), "args": list(obj.args), "keywords": dict(obj.keywords)}
    if inspect.ismethod(obj):
        return {"method": obj.__name__, "of": describe(obj.__self__)}
    if inspect.isbuiltin(obj):
        return {"function": obj.__name__}
    if inspect.isfunction(obj):
        try:
            source = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):  # defined in an interactive session
            source = obj.__code__.co_code.hex()
        return {"function": obj.__name__, "source": fingerprint(source)}
    raise TypeError(f"{type(obj).__name__} cannot stand in a fingerprint: give it a describe() method that returns "
                    "its kind and settings")


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
    """What a finished stage leaves behind in its `.done.json` marker."""

    name: str
    fingerprint: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


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

    def stage(
        self,
        name: str,
        fp: str,
        work: Callable[[], dict[str, Any]],
        log: Callable[[str], None] = print,
    ) -> StageRecord:
        """Run `work` unless stage `name` already finished with fingerprint `fp`.

        `work` writes the stage's outputs (atomically) and returns a few counts for the
        record. Its wall seconds are kept from the run that really did the work, so a
        resumed run reports the time the stage took, not the time to skip it.
        """
        old = self.record(name)
        if old is not None and old.fingerprint == fp:
            log(f"[skip] {name}: done ({old.seconds:.1f}s)")
            return old
        if old is not None:
            log(f"[redo] {name}: its config or inputs changed")
            self._marker(name).unlink()
        log(f"[run]  {name}")
        t0 = time.perf_counter()
        info = work()
        rec = StageRecord(name=name, fingerprint=fp, seconds=round(time.perf_counter() - t0, 3), info=info)
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
