"""The OpenAI-compatible path against a real HTTP server on localhost (`selftrain.samplers.serve`),
backed by a real (tiny) transformers model with a chat template, with faults injected."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from selftrain.errors import ConfigError
from selftrain.samplers.base import Failed, SamplingParams, generate_or_fail
from selftrain.samplers.openai import ApiRequest, OpenAISampler, SamplerFailed
from selftrain.samplers.serve import FAULT_KINDS, Faults, ModelServer, request_key

PARAMS = SamplingParams(temperature=1.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    from selftrain.config import TinyModelConfig
    from selftrain.training.tiny import save_tiny

    folder = tmp_path_factory.mktemp("tiny-chat") / "model"
    save_tiny(folder, TinyModelConfig(arch="llama", hidden_size=32, num_layers=1, num_heads=2,
                                      intermediate_size=64, max_length=128), seed=0, chat=True)
    return folder


@pytest.fixture(scope="module")
def hf(chat_model):
    from selftrain.samplers.hf import HFSampler

    return HFSampler(chat_model, batch_size=64)


def _client(server, tmp_path, **kw) -> OpenAISampler:
    kw = {"timeout": 1.0, "backoff": 0.02, "max_backoff": 0.2, "max_concurrency": 32, "progress": False, **kw}
    return OpenAISampler(server.url, "tiny", cache=tmp_path / "cache.sqlite", failed_path=tmp_path / "failed.jsonl", **kw)


def _user_text(body: dict) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def test_chat_template_and_completion_mode(hf, tmp_path):
    with ModelServer(hf) as server:
        assert server.chat_prompt([{"role": "user", "content": "hi"}]) == "<|user|>\nhi\n<|assistant|>\n"
        chat = _client(server, tmp_path)
        texts = chat.generate(["a", "b", "a"], PARAMS, seed=3)
        assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
        completion = _client(server, tmp_path, mode="completion")
        assert len(completion.generate(["12+3="], SamplingParams(temperature=0.0, max_new_tokens=4), seed=0)) == 1
        bodies = [b for _, b in server.arrivals]
    assert [_user_text(b) for b in bodies[:3]].count("a") == 2  # two samples of "a": two seeds, two requests
    assert {b["seed"] for b in bodies if _user_text(b) == "a"} == {3, 4}
    assert bodies[-1]["prompt"] == "12+3=" and chat.stats.prompt_tokens > 0 and chat.stats.completion_tokens > 0


def test_every_request_answered_or_failed_under_faults(hf, tmp_path):
    faults = Faults(rate=0.3, permanent=0.03, retry_after=0.05, slow_seconds=1.5, seed=1)
    prompts = [f"question {i}" for i in range(150)]
    with ModelServer(hf, faults=faults) as server:
        client = _client(server, tmp_path, max_retries=8)
        results = generate_or_fail(client, prompts, PARAMS, seed=0)
        received = dict(server.received)
        by_prompt: dict[str, str] = {}
        for _, body in server.arrivals:
            by_prompt[_user_text(body)] = request_key(body)
    assert len(results) == len(prompts)
    assert set(server.faults_sent) == set(FAULT_KINDS)  # every kind of fault happened
    failed = [p for p, r in zip(prompts, results) if isinstance(r, Failed)]
    # a request fails exactly when the server was set to fault every one of its 9 attempts
    doomed = [p for p in prompts if all(faults.pick(by_prompt[p], a) for a in range(1, 10))]
    assert failed == doomed and failed
    assert all(received[by_prompt[p]] == 9 for p in failed)  # 1 + 8 retries each
    assert all(isinstance(r, str) for r in results if not isinstance(r, Failed))
    rows = [json.loads(line) for line in (tmp_path / "failed.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in rows) == sorted(failed)
    assert all(r["attempts"] == 9 and "500" in r["error"] for r in rows)
    stats = client.last_stats
    assert (stats.requests, stats.failed, stats.cached) == (150, len(failed), 0) and stats.retried > 0
    assert len(client.cache) == 150 - len(failed)  # answers are cached, failures are not

    # a rerun asks only for the failed rows again
    with ModelServer(hf) as server:
        again = _client(server, tmp_path).generate(prompts, PARAMS, seed=0)
        assert sorted(_user_text(b) for _, b in server.arrivals) == sorted(failed)
    assert [a for a, r in zip(again, results) if isinstance(r, str)] == [r for r in results if isinstance(r, str)]
    assert (tmp_path / "failed.jsonl").read_text() == ""


def test_generate_raises_naming_the_failed_rows_file(hf, tmp_path):
    with ModelServer(hf, faults=Faults(permanent=1.0)) as server:
        with pytest.raises(SamplerFailed, match=r"2 of 2 requests .*failed\.jsonl"):
            _client(server, tmp_path, max_retries=1).generate(["x", "y"], PARAMS, seed=0)


def test_retry_after_is_honoured(hf, tmp_path):
    with ModelServer(hf, faults=Faults(rate=1.0, kinds=("429",), retry_after=0.3)) as server:
        (result,) = _client(server, tmp_path, max_retries=2, backoff=0.001).complete([ApiRequest("q", PARAMS, 0)])
        times = [t for t, _ in server.arrivals]
    assert isinstance(result, Failed) and result.attempts == 3 and "429" in result.error
    assert len(times) == 3 and all(b - a >= 0.29 for a, b in zip(times, times[1:]))


def test_client_errors_are_not_retried_and_duplicates_sent_once(hf, tmp_path):
    with ModelServer(hf) as server:
        wrong = OpenAISampler(server.url + "/wrong", "tiny", progress=False, max_retries=5)
        (result,) = wrong.complete([ApiRequest("q", PARAMS, 0)])
        assert isinstance(result, Failed) and result.attempts == 1 and result.error.startswith("404")
        same = ApiRequest("same", PARAMS, 7)
        a, b = _client(server, tmp_path).complete([same, same])
        assert a == b and [_user_text(b) for _, b in server.arrivals].count("same") == 1


def test_a_remote_endpoint_needs_a_key(monkeypatch):
    monkeypatch.delenv("SELFTRAIN_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SELFTRAIN_TEST_KEY"):
        OpenAISampler("https://api.example.com/v1", "m", api_key_env="SELFTRAIN_TEST_KEY")


_CLIENT = """
import sys
from selftrain.samplers.base import SamplingParams
from selftrain.samplers.openai import OpenAISampler
s = OpenAISampler(sys.argv[1], "tiny", cache=sys.argv[2], max_concurrency=4, progress=False)
s.generate([f"row {i}" for i in range(120)], SamplingParams(temperature=1.0, max_new_tokens=6), seed=0)
"""


def test_rerun_after_kill_sends_only_missing_requests(hf, tmp_path):
    cache = tmp_path / "cache.sqlite"
    prompts = [f"row {i}" for i in range(120)]
    with ModelServer(hf, faults=Faults(rate=0.2, kinds=("500", "429"), retry_after=0.05)) as server:
        # the client kills itself with SIGKILL right after caching its 40th answer (selftrain.faults)
        proc = subprocess.run([sys.executable, "-c", _CLIENT, server.url, str(cache)], timeout=120,
                              env={**os.environ, "SELFTRAIN_KILL_AT": "openai:answer40"})
        assert proc.returncode == -signal.SIGKILL
        first = {_user_text(b) for _, b in server.arrivals}
        n_arrivals = len(server.arrivals)
    client = OpenAISampler(server.url, "tiny", cache=cache, progress=False)
    answered = {p for p in prompts if client.cache.get(client.key(ApiRequest(p, PARAMS, 0))) is not None}
    assert len(answered) == 40 == _count(cache) and answered <= first
    with ModelServer(hf) as server:
        client = OpenAISampler(server.url, "tiny", cache=cache, progress=False)
        texts = client.generate(prompts, PARAMS, seed=0)
        resent = [_user_text(b) for _, b in server.arrivals]
    assert len(texts) == 120 and n_arrivals > 0
    assert sorted(resent) == sorted(set(prompts) - answered)  # only the missing ones, once each
    assert client.last_stats.cached == len(answered)


def _count(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_request_cut_off_mid_body_is_not_an_arrival(hf):
    import socket
    import urllib.error
    import urllib.request

    with ModelServer(hf) as server:
        host, port = server.url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:  # a client killed while sending
            sock.sendall(b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"prompt\": \"12")
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1024)
        request = urllib.request.Request(server.url + "/completions", data=b"", method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 400 and b"empty" in err.value.read()
        assert server.arrivals == []
