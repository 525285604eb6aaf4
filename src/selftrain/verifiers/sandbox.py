"""A sandbox for running model-written programs against their tests.

- **namespaces** (as root, with util-linux `unshare`): a small zygote process, started once
  per `Sandbox`, is process 1 of a new network, PID and mount namespace (only a loopback,
  down: nothing can be reached; private, root-owned tmpfs on `/tmp`, `/var/tmp`,
  `/dev/shm`). Per program it forks a tester, which takes a further PID and mount namespace
  and a fresh tmpfs working folder, and forks the candidate: process 1 of its own PID
  namespace, under an unprivileged user id of its own (one per parallel slot), so it can
  write nowhere else, cannot signal or trace the harness, `RLIMIT_NPROC` bounds a fork bomb,
  and killing it kills everything it started.
- **process** (the fallback where namespaces cannot be made): a fresh interpreter per
  program with the same resource limits, scrubbed environment, closed stdin and
  process-group kill; as root, the program still runs under a uid of its own (so it cannot
  signal or write anything of the caller's, and `RLIMIT_NPROC` binds), but it keeps the
  network and can write to world-writable folders such as /tmp. Not as root, it would run
  as the caller: "auto" then refuses with a clear error, and `isolation="process"` (or
  SELFTRAIN_SANDBOX=process) must be asked for explicitly. `Sandbox.isolation` and
  `Sandbox.describe()` say which one is in force; the fallback logs a warning.

In both: limits on CPU seconds, address space, file size and open files; a private
working folder; an environment with nothing of the caller's; stdin closed; a wall-clock
timeout.

The verdict comes from a trusted tester process that runs the task's test code against a
proxy of the program's function and sees the program's return values only as plain data
(see `_sandbox_child.py`). Printing a fake "passed", exiting early, or patching builtins,
`assert` or the test runner inside the program cannot make a test pass.
"""

from __future__ import annotations

import logging
import marshal
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("selftrain")

CHILD = Path(__file__).with_name("_sandbox_child.py")
UID_BASE = 1_500_000
"""Unprivileged user ids for sandboxed programs: one per parallel slot, unused by the host."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    """Wall-clock time for loading the program and running all its tests."""
    cpu_seconds: int = 10
    memory_mb: int = 1024
    """Address space of the program's process."""
    file_size_mb: int = 16
    processes: int = 16
    """Processes and threads the program's user id may have at once (namespaces only)."""
    tmp_mb: int = 64
    """Size of each private tmpfs (namespaces only)."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    calls: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class CodeJob:
    """One program and its tests, HumanEval style: `check(candidate)` asserts on calls."""

    program: str
    """The program; it must define `entry_point`."""
    test: str
    """Test code defining `check(candidate)`."""
    entry_point: str
    context: str = ""
    """Trusted code the test may need (e.g. helper functions of the prompt); run by the tester."""


class Sandbox:
    def __init__(
        self,
        limits: Limits | None = None,
        isolation: Literal["auto", "namespaces", "process"] = "auto",
        python: str | None = None,
    ):
        """`isolation="auto"` takes namespaces where they can be made, else process; the
        environment variable SELFTRAIN_SANDBOX=process|namespaces overrides "auto"."""
        self.limits = limits or Limits()
        self.python = python or sys.executable
        self._unshare = shutil.which("unshare")
        if isolation == "auto" and os.environ.get("SELFTRAIN_SANDBOX") in ("namespaces", "process"):
            isolation = os.environ["SELFTRAIN_SANDBOX"]  # type: ignore[assignment]
        if isolation == "auto":
            if self._namespaces_work():
                isolation = "namespaces"
            elif os.geteuid() == 0:
                isolation = "process"
                log.warning(
                    "code sandbox: cannot create namespaces (util-linux unshare missing or not permitted); "
                    "programs run under an unprivileged uid with resource limits, but keep the network"
                )
            else:
                raise RuntimeError(
                    "code sandbox: cannot create namespaces (they need root and util-linux unshare), and without "
                    "them a program runs as you: it could reach the network, write your files, or signal your "
                    "processes. Run as root (e.g. in a container), or accept this with isolation='process' "
                    "(SELFTRAIN_SANDBOX=process)."
                )
        elif isolation == "namespaces" and not self._namespaces_work():
            raise RuntimeError("code sandbox: namespaces requested but `unshare --net --pid --mount` fails here")
        self.isolation = isolation
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._next_slot = 0
        self._slot_lock = threading.Lock()
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.Lock()

    def _namespaces_work(self) -> bool:
        if os.name != "posix" or os.geteuid() != 0 or not self._unshare:
            return False
        try:
            done = subprocess.run(
                [self._unshare, "--net", "--pid", "--mount", "--fork", "--mount-proc", "true"],
                capture_output=True, timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def describe(self) -> str:
        if self.isolation == "namespaces":
            return "namespaces (no network, private PID/mount namespaces, unprivileged uid, rlimits)"
        if os.geteuid() == 0:
            return "process (unprivileged uid, rlimits, scrubbed env, process-group kill; network NOT isolated)"
        return "process (rlimits, scrubbed env, process-group kill; network and uid NOT isolated)"

    def _slot(self) -> int:
        try:
            return self._slots.get_nowait()
        except queue.Empty:
            with self._slot_lock:
                self._next_slot += 1
                return self._next_slot - 1

    def run(self, job: CodeJob) -> Verdict:
        """Run one program against its tests; never raises for anything the program does."""
        slot = self._slot()
        try:
            return self._run(job, slot)
        finally:
            self._slots.put(slot)

    def map(self, jobs: Sequence[CodeJob], workers: int | None = None, progress=None) -> list[Verdict]:
        """Run many programs, `workers` at a time (default: the cores this process may use)."""
        workers = workers or len(os.sched_getaffinity(0))
        out: list[Verdict | None] = [None] * len(jobs)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(self.run, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                out[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the zygote (namespaces); the next run starts a fresh one."""
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def _get_zygote(self) -> _Zygote:
        with self._zygote_lock:
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = _Zygote(self._unshare, self.python, self.limits)
            return self._zygote

    def _run(self, job: CodeJob, slot: int) -> Verdict:
        spec = {"program": job.program, "entry_point": job.entry_point, "limits": asdict(self.limits)}
        tests = marshal.dumps({"test": job.test, "context": job.context})
        tests = len(tests).to_bytes(4, "big") + tests
        if self.isolation == "namespaces":
            spec["uid"] = UID_BASE + slot
            spec["python_prefix"] = sys.base_prefix  # seen inside at /tmp/.python (see _Zygote)
            return self._run_in_zygote(spec, tests)
        return self._run_in_process(spec, tests, slot)

    def _run_in_zygote(self, spec: dict, tests: bytes) -> Verdict:
        for attempt in (1, 2):
            zygote = self._get_zygote()
            tests_r, tests_w = os.pipe()
            verdict_r, verdict_w = os.pipe()
            try:
                zygote.submit(marshal.dumps(spec), [tests_r, verdict_w])
            except OSError as err:  # the zygote is gone: start another, once
                for fd in (tests_r, tests_w, verdict_r, verdict_w):
                    os.close(fd)
                if attempt == 2:
                    return Verdict(False, f"sandbox failed: {err}")
                continue
            os.close(tests_r)
            os.close(verdict_w)
            try:
                _write_all(tests_w, tests)
            except OSError:
                pass  # the tester ended early: its verdict says why
            finally:
                os.close(tests_w)
            try:
                data = _read_verdict(verdict_r, self.limits.wall_seconds + 5.0)
            finally:
                os.close(verdict_r)
            return self._verdict(data, "")
        raise AssertionError("unreachable")

    def _run_in_process(self, spec: dict, tests: bytes, slot: int) -> Verdict:
        scratch = tempfile.mkdtemp(prefix="selftrain-sandbox-")
        spec["scratch"] = scratch
        if os.geteuid() == 0:  # as root, the program still gets a uid of its own
            spec["uid"] = UID_BASE + slot
            os.chmod(scratch, 0o711)
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [self.python, "-I", "-S", "-B", str(CHILD), "tester", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except OSError as err:
            os.close(read_fd)
            os.close(write_fd)
            shutil.rmtree(scratch, ignore_errors=True)
            return Verdict(False, f"sandbox could not start: {err}")
        os.close(write_fd)
        try:
            try:
                data = marshal.dumps(spec)
                proc.stdin.write(len(data).to_bytes(4, "big") + data + tests)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            line = _read_verdict(read_fd, self.limits.wall_seconds + 5.0)
        finally:
            os.close(read_fd)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stderr = proc.stderr.read() if not line else b""
            proc.stderr.close()
            proc.wait()
            shutil.rmtree(scratch, ignore_errors=True)
        return self._verdict(line, stderr.decode(errors="replace"))

    def _verdict(self, data: bytes | None, stderr: str) -> Verdict:
        if data is None:
            return Verdict(False, f"timed out after {self.limits.wall_seconds:g} s (killed)")
        if not data:
            tail = stderr.strip().splitlines()[-1:] or ["no message"]
            return Verdict(False, f"sandbox failed: {tail[0][:300]}")
        verdict = marshal.loads(data)
        return Verdict(verdict["passed"], verdict["reason"], verdict["calls"], verdict["seconds"])


class _Zygote:
    """The sandbox's namespaces, made once: a small process (`_sandbox_child.py zygote`) that
    is process 1 of a network, PID and mount namespace and forks one tester per program.
    Closing it (or the death of this process) ends every process inside."""

    def __init__(self, unshare: str, python: str, limits: Limits):
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [unshare, "--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child",
             python, "-I", "-S", "-B", str(CHILD), "zygote"],
            stdin=child, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        child.close()
        self.lock = threading.Lock()
        # the interpreter's folder may be unreadable by the program's user id (e.g. under
        # /root): the zygote bind-mounts it read-only at /tmp/.python
        self.sock.send(marshal.dumps({"tmp_mb": limits.tmp_mb, "python_prefix": sys.base_prefix}))
        self.sock.settimeout(30)
        try:
            ready = self.sock.recv(16)
        except OSError:
            ready = b""
        self.sock.settimeout(None)
        if ready != b"ready":
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.poll() is not None else ""
            self.close()
            raise RuntimeError(f"code sandbox: the zygote did not start: {err[-500:] or 'no message'}")
        self._finalizer = weakref.finalize(self, _Zygote._kill, self.proc)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, spec: bytes, fds: list[int]) -> None:
        with self.lock:
            socket.send_fds(self.sock, [spec], fds)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        self.sock.close()
        self._kill(self.proc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_verdict(fd: int, timeout: float) -> bytes | None:
    """The verdict written to `fd` (a 4-byte length, then marshal data); b"" if the writer
    ended without one, None on timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        buf += chunk
    return buf[4:]

