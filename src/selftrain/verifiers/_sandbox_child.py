"""The inside of the code sandbox: a standalone script (standard library only, few imports).

Three roles:

- the **zygote** (`_sandbox_child.py zygote`, namespaces mode): process 1 of the sandbox's
  network, PID and mount namespaces, started once per `Sandbox`; it forks one tester per
  program and never holds any test code.
- the **tester** (trusted): takes a PID and mount namespace of its own (zygote) or is a
  fresh process (`_sandbox_child.py tester FD`, process mode); forks the candidate, and only
  then reads the task's test code, which it runs against a *proxy* of the program's
  function. It writes the verdict to a descriptor the candidate never holds.
- the **candidate** (untrusted): forked from the tester before the tests exist in its
  memory, limited and stripped of privileges; it runs the program and answers calls: each
  request carries arguments, each reply the return value as plain data.

The verdict cannot be forged by the program: the assertions run in the tester, on values
decoded from plain data (no object of the program, no `__eq__` of its choosing reaches
them); the program's stdout goes nowhere; exiting early closes the pipe, which fails the
test; patching builtins or the test runner changes only the program's own process.

Messages between tester and candidate are frames: a 4-byte length, a kind byte, and a
payload in the small codec below. The host sends jobs, and receives verdicts, as `marshal`
data (both ends trusted). Run by `selftrain.verifiers.sandbox`; not meant to be run by hand.
"""

from __future__ import annotations

import marshal
import os
import resource
import select
import sys
import time

MAX_MESSAGE = 16 << 20  # bytes in one frame
MAX_DEPTH = 200


# ---------------------------------------------------------------- a codec for plain data


class Unsupported(TypeError):
    pass


def encode(value, out: list, depth: int = 0) -> None:
    """Append the encoding of plain Python data to `out`; exact builtin types only."""
    if depth > MAX_DEPTH:
        raise Unsupported("value nested too deeply")
    t = type(value)
    if value is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if value else b"F")
    elif t is int:
        out.append(b"i%s;" % int.__repr__(value).encode())
    elif t is float:
        out.append(b"f%s;" % float.__repr__(value).encode())
    elif t is str:
        data = str.encode(value, "utf-8", "surrogatepass")
        out.append(b"s%d:%s" % (len(data), data))
    elif t is bytes:
        out.append(b"b%d:%s" % (len(value), value))
    elif t is complex:
        out.append(b"c%s;%s;" % (float.__repr__(value.real).encode(), float.__repr__(value.imag).encode()))
    elif t in _CONTAINERS:
        items = list(dict.items(value)) if t is dict else list(t.__iter__(value))
        out.append(b"%s%d;" % (_CONTAINERS[t], len(items)))
        for item in items:
            if t is dict:
                encode(item[0], out, depth + 1)
                encode(item[1], out, depth + 1)
            else:
                encode(item, out, depth + 1)
    else:
        raise Unsupported(f"cannot pass a value of type {t.__name__} out of the sandbox")


_CONTAINERS = {list: b"l", tuple: b"t", dict: b"d", set: b"S", frozenset: b"z"}
_BUILD = {b"l"[0]: list, b"t"[0]: tuple, b"S"[0]: set, b"z"[0]: frozenset}


def decode(data: bytes):
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise ValueError("trailing bytes")
    return value


def _decode(data: bytes, i: int, depth: int):
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    tag = data[i]
    i += 1
    if tag == 78:  # N
        return None, i
    if tag == 84 or tag == 70:  # T F
        return tag == 84, i
    if tag in (105, 102):  # i f
        end = data.index(b";", i)
        text = data[i:end].decode("ascii")
        return (int(text) if tag == 105 else float(text)), end + 1
    if tag in (115, 98):  # s b
        colon = data.index(b":", i)
        n = int(data[i:colon])
        raw = data[colon + 1 : colon + 1 + n]
        if len(raw) != n:
            raise ValueError("short string")
        return (raw.decode("utf-8", "surrogatepass") if tag == 115 else bytes(raw)), colon + 1 + n
    if tag == 99:  # c
        mid = data.index(b";", i)
        end = data.index(b";", mid + 1)
        return complex(float(data[i:mid]), float(data[mid + 1 : end])), end + 1
    end = data.index(b";", i)
    n = int(data[i:end])
    i = end + 1
    if tag == 100:  # d
        out = {}
        for _ in range(n):
            key, i = _decode(data, i, depth + 1)
            out[key], i = _decode(data, i, depth + 1)
        return out, i
    if tag not in _BUILD:
        raise ValueError(f"unknown tag {tag}")
    items = []
    for _ in range(n):
        item, i = _decode(data, i, depth + 1)
        items.append(item)
    return _BUILD[tag](items), i


# ---------------------------------------------------------------- frames on raw descriptors


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(fd: int, kind: bytes, payload: bytes = b"") -> None:
    write_all(fd, (len(payload) + 1).to_bytes(4, "big") + kind + payload)


def read_exactly(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """`n` bytes, or None at end of file; TimeoutError past `deadline`."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, deadline: float | None = None) -> tuple[int, bytes] | None:
    """(kind, payload) of the next frame, or None at end of file."""
    head = read_exactly(fd, 4, deadline)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if not 0 < n <= MAX_MESSAGE:
        raise ValueError("bad frame length")
    body = read_exactly(fd, n, deadline)
    if body is None:
        return None
    return body[0], body[1:]


# ---------------------------------------------------------------- the candidate


def run_candidate(program: str, entry_point: str) -> None:
    """Run the program, then answer calls: requests on fd 3, replies on fd 4."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<program>", "exec"), namespace)
        fn = namespace[entry_point]
    except BaseException as err:  # noqa: BLE001 - any failure of the program is its verdict
        send(4, b"L", _describe(err).encode("utf-8", "replace"))
        return
    send(4, b"Y")
    while True:
        frame = receive(3)
        if frame is None:
            return
        try:
            args, kwargs = decode(frame[1])
        except Exception:  # noqa: BLE001
            return
        try:
            result = fn(*args, **kwargs)
            out: list[bytes] = []
            encode(result, out)
            send(4, b"V", b"".join(out))
        except Unsupported as err:
            send(4, b"E", str(err).encode())
        except BaseException as err:  # noqa: BLE001
            send(4, b"R", _describe(err).encode("utf-8", "replace"))


def _describe(err: BaseException) -> str:
    try:
        text = f"{type(err).__name__}: {err}"
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = "an exception that cannot be printed"
    return text[:300]


def _limit(kind: int, value: int, hard: int | None = None) -> None:
    resource.setrlimit(kind, (value, value if hard is None else hard))


def _move_imports(old: str, new: str) -> None:
    """Import from `new` what was found under `old`: sys.path and packages already loaded."""
    sys.path[:] = [p.replace(old, new, 1) if p.startswith(old) else p for p in sys.path]
    for module in list(sys.modules.values()):
        path = getattr(module, "__path__", None)
        if isinstance(path, list):
            path[:] = [p.replace(old, new, 1) if p.startswith(old) else p for p in path]
    sys.path_importer_cache.clear()


def _start_candidate(job: dict, workdir: str, req_r: int, resp_w: int, libc: _Libc | None) -> int:
    """Fork the candidate. It is forked before the tester has read the test code, so the
    program cannot find the tests in its memory; stdin is replaced. With `libc` (inside the
    zygote), the tester has unshared a PID and a mount namespace: the candidate is process 1
    of its own PID namespace, so killing it kills everything it started."""
    limits = job["limits"]
    pid = os.fork()
    if pid:
        return pid
    try:
        if libc is not None:
            libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        os.dup2(req_r, 3)
        os.dup2(resp_w, 4)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # stdin: nothing
        os.dup2(null, 1)
        err = os.open(os.path.join(workdir, ".stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        os.closerange(5, 1 << 16)
        os.setsid()
        _limit(resource.RLIMIT_CPU, limits["cpu_seconds"])  # SIGKILL: a PID namespace's process 1 ignores SIGXCPU
        _limit(resource.RLIMIT_AS, limits["memory_mb"] << 20)
        _limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] << 20)
        _limit(resource.RLIMIT_NOFILE, 64)
        _limit(resource.RLIMIT_CORE, 0)
        uid = job.get("uid")
        if uid is not None:
            _limit(resource.RLIMIT_NPROC, limits["processes"])
            os.fchown(2, uid, uid)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if job.get("python_prefix"):  # imports read the interpreter through its bind mount
                _move_imports(job["python_prefix"], "/tmp/.python")
        if libc is not None:  # after the uid change, which clears it: die with the tester
            libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
        run_candidate(job["program"], job["entry_point"])
    except BaseException as err:  # noqa: BLE001
        os.write(2, f"sandbox: the program ended: {err!r}\n".encode())
    finally:
        os._exit(0)


# ---------------------------------------------------------------- the tester


class CandidateGone(Exception):
    pass


class CandidateTimeout(Exception):
    pass


class CandidateError(Exception):
    pass


class _Libc:
    """mount(2), unshare(2) and prctl(2) as Python callables returning (result, errno).
    Built on `_ctypes` directly: importing `ctypes` costs more than this process's start-up."""

    def __init__(self):
        import _ctypes

        class c_int(_ctypes._SimpleCData):
            _type_ = "i"

        class c_ulong(_ctypes._SimpleCData):
            _type_ = "L"

        class c_char_p(_ctypes._SimpleCData):
            _type_ = "z"

        def function(name: str, *argtypes):
            class Function(_ctypes.CFuncPtr):
                _flags_ = 1 | 8  # cdecl, use errno
                _restype_ = c_int
                _argtypes_ = argtypes

            call = Function(_ctypes.dlsym(_ctypes.dlopen(None, 0), name))

            def checked(*args):
                if call(*args) != 0:
                    errno = _ctypes.get_errno()
                    raise OSError(errno, f"{name}{args}: {os.strerror(errno)}")

            return checked

        self._mount = function("mount", c_char_p, c_char_p, c_char_p, c_ulong, c_char_p)
        self.unshare = function("unshare", c_int)
        self.prctl = function("prctl", c_int, c_ulong, c_ulong, c_ulong, c_ulong)

    def mount(self, source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        self._mount(source.encode(), target.encode(), fstype and fstype.encode(), flags, data and data.encode())


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
CLONE_NEWNS, CLONE_NEWPID = 0x00020000, 0x20000000
PR_SET_PDEATHSIG = 1


def _mount_private(libc: _Libc, size_mb: int, python_prefix: str | None, world_writable: bool) -> None:
    """Private tmpfs on the shared writable folders; the interpreter bind-mounted read-only
    at /tmp/.python, since its own folder may not be readable by an unprivileged user."""
    mode = "1777" if world_writable else "0755"
    for target in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(target):
            libc.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode={mode}")
    if python_prefix:
        os.mkdir("/tmp/.python", 0o755)
        libc.mount(python_prefix, "/tmp/.python", None, MS_BIND, None)
        libc.mount(python_prefix, "/tmp/.python", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _exit_status(pid: int, cpu_limit: float) -> str:
    """How the candidate ended, if it has (waits up to half a second)."""
    for _ in range(50):
        try:
            done, status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return ""
        if done:
            if os.WIFSIGNALED(status):
                if usage.ru_utime + usage.ru_stime >= 0.8 * cpu_limit:  # rusage is sampled: not exact
                    return "killed at the CPU-time limit"
                sig = os.WTERMSIG(status)
                return "killed (SIGKILL)" if sig == 9 else f"killed by signal {sig}"
            return f"exit code {os.WEXITSTATUS(status)}" if os.WEXITSTATUS(status) else ""
        time.sleep(0.01)
    return ""


def _stderr_tail(workdir: str) -> str:
    try:
        with open(os.path.join(workdir, ".stderr"), "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 400))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1][:200] if lines else ""
    except OSError:
        return ""


def _read_job_part(fd: int) -> dict:
    """One part of the job from the host: a 4-byte length, then that many bytes of marshal."""
    head = read_exactly(fd, 4)
    body = read_exactly(fd, int.from_bytes(head or b"\0\0\0\0", "big"))
    if not body:
        raise EOFError("job cut short")
    return marshal.loads(body)


def _names(code) -> set[str]:
    """Global names a code object and its nested code objects use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def _failed_test_line(tb, test: str) -> str:
    lineno = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = test.splitlines()
    text = lines[lineno - 1].strip()[:200] if 0 < lineno <= len(lines) else "assertion"
    return f"test failed at line {lineno}: {text}"


def run_job(job: dict, read_tests, verdict_fd: int, workdir: str, libc: _Libc | None) -> None:
    """Start the candidate, read the tests, run them against it, write the verdict; exits."""
    started = time.monotonic()
    deadline = started + job["limits"]["wall_seconds"]
    calls = 0
    candidate_pid = 0

    def finish(passed: bool, reason: str) -> None:
        out = {"passed": passed, "reason": reason, "calls": calls, "seconds": round(time.monotonic() - started, 4)}
        data = marshal.dumps(out)
        try:
            write_all(verdict_fd, len(data).to_bytes(4, "big") + data)
        except OSError:
            pass
        if candidate_pid:  # process 1 of its PID namespace (zygote) or the leader of its session
            for kill in (os.kill, os.killpg):
                try:
                    kill(candidate_pid, 9)
                except OSError:
                    pass
            try:
                os.waitpid(candidate_pid, 0)  # leave no zombie behind
            except ChildProcessError:
                pass
        os._exit(0)

    try:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        candidate_pid = _start_candidate(job, workdir, req_r, resp_w, libc)
        os.close(req_r)
        os.close(resp_w)
        job.update(read_tests())

        def reply() -> tuple[int, bytes]:
            try:
                frame = receive(resp_r, deadline)
            except TimeoutError:
                raise CandidateTimeout from None
            except ValueError:
                raise CandidateError("a malformed reply") from None
            if frame is None:
                raise CandidateGone
            return frame

        kind, payload = reply()
        if kind == ord("L"):
            finish(False, f"program failed to load: {payload.decode(errors='replace')}")

        def proxy(*args, **kwargs):
            nonlocal calls
            calls += 1
            out: list[bytes] = []
            encode((args, kwargs), out)
            try:
                send(req_w, b"C", b"".join(out))
            except BrokenPipeError:
                raise CandidateGone from None
            kind, payload = reply()
            if kind == ord("V"):
                try:
                    return decode(payload)
                except (ValueError, IndexError, UnicodeDecodeError, OverflowError):
                    raise CandidateError("a malformed value") from None
            if kind in (ord("R"), ord("E")):
                raise CandidateError(payload.decode(errors="replace"))
            raise CandidateError("an unexpected message")

        namespace = {"__name__": "__selftrain_test__"}
        test_code = compile(job["test"], "<test>", "exec")
        try:
            context_code = compile(job["context"], "<prompt>", "exec")
        except SyntaxError:  # a bare signature: no helpers to give the test
            context_code = compile("", "<prompt>", "exec")
        if (_names(test_code) - {job["entry_point"]}) & set(context_code.co_names):
            exec(context_code, namespace)  # the test calls a helper the prompt defines
        exec(test_code, namespace)
        namespace[job["entry_point"]] = proxy
        namespace["check"](proxy)
    except CandidateTimeout:
        finish(False, f"timed out after {job['limits']['wall_seconds']} s")
    except CandidateGone:
        how = _exit_status(candidate_pid, job["limits"]["cpu_seconds"]) or _stderr_tail(workdir)
        finish(False, "program exited before the tests finished" + (f": {how}" if how else ""))
    except CandidateError as err:
        finish(False, f"program raised {err}" if not str(err).startswith("a ") else f"program sent {err}")
    except AssertionError:
        finish(False, _failed_test_line(sys.exc_info()[2], job["test"]))
    except BaseException as err:  # noqa: BLE001
        finish(False, f"test raised {_describe(err)}")
    finish(True, f"passed ({calls} calls)")


PREIMPORT = ("typing", "math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect",
             "random", "hashlib", "copy", "fractions", "statistics", "operator", "socket", "glob", "encodings.idna")


def tester() -> None:
    """One job in a fresh process, without namespaces (the `process` isolation): the job
    arrives on stdin, the verdict leaves on the fd named in argv."""
    verdict_fd = int(sys.argv[2])
    job = _read_job_part(0)  # the program and the limits; the tests come after the fork
    workdir = os.path.join(job["scratch"], "work")
    os.makedirs(workdir, mode=0o700)
    if job.get("uid") is not None:
        os.chown(workdir, job["uid"], job["uid"])
        # the interpreter's folder may be unreadable by that uid and there is no bind mount
        # here: load the standard modules programs use most before the candidate drops to it
        for name in PREIMPORT:
            try:
                __import__(name)
            except ImportError:
                pass

    def read_tests() -> dict:
        tests = _read_job_part(0)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        return tests

    run_job(job, read_tests, verdict_fd, workdir, None)


def zygote() -> None:
    """Process 1 of the sandbox's network, PID and mount namespaces, started once per
    `Sandbox`: it forks one tester per job. A job arrives on the control socket (fd 0) as
    marshal data with two descriptors: a pipe the tests will come through, and the pipe for
    the verdict. The zygote never holds any test code, so a candidate forked below it
    cannot find one in memory."""
    import signal
    import socket

    def reap(*_) -> None:
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
            except ChildProcessError:
                return

    signal.signal(signal.SIGCHLD, reap)  # finished testers are reaped at once
    libc = _Libc()
    control = socket.socket(fileno=0)
    setup = marshal.loads(control.recv(1 << 16))
    _mount_private(libc, setup["tmp_mb"], setup.get("python_prefix"), world_writable=False)
    os.mkdir("/tmp/.job", 0o755)
    control.send(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 24, 2)
        except OSError:
            return
        if not message:
            return  # the host closed the socket: exiting ends every process in the namespaces
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        tests_fd, verdict_fd = fds
        if os.fork() == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                job = marshal.loads(message)
                signal.alarm(int(job["limits"]["wall_seconds"]) + 3)  # a hung test ends the tester too
                libc.unshare(CLONE_NEWPID | CLONE_NEWNS)  # the candidate's own PID and mount namespaces
                libc.mount("tmpfs", "/tmp/.job", "tmpfs", MS_NOSUID | MS_NODEV, f"size={job['limits']['tmp_mb']}m,mode=0755")
                workdir = "/tmp/.job/work"
                os.mkdir(workdir, 0o700)
                os.chown(workdir, job["uid"], job["uid"])

                def read_tests(tests_fd: int = tests_fd) -> dict:
                    tests = _read_job_part(tests_fd)
                    os.close(tests_fd)
                    return tests

                run_job(job, read_tests, verdict_fd, workdir, libc)
            finally:
                os._exit(0)
        os.close(tests_fd)
        os.close(verdict_fd)


if __name__ == "__main__":
    {"tester": tester, "zygote": zygote}[sys.argv[1]]()
