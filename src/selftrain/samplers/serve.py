"""An OpenAI-compatible HTTP server over a local model, with optional fault injection.

    selftrain serve MODEL [--port 8000] [--batch-size 16]

MODEL is a model folder, a Hugging Face name or a `.gguf` file. The server speaks enough of
the chat completions protocol for the `openai` client and selftrain's `OpenAISampler`:
`POST /v1/chat/completions` (the model's chat template is applied when it has one),
`POST /v1/completions` and `GET /v1/models`. Requests that arrive together are decoded as
one batch by a single generation thread.

`Faults` makes the server misbehave on purpose, the way real endpoints do, so a client can
be tested against it: 429 with Retry-After, 500, replies slower than the client's timeout,
a 200 whose JSON body is cut short, a connection dropped without a reply, and a fraction of
requests that always fail. Which attempt of which request gets a fault is drawn from a hash
of the request's body and its attempt number, so a run is reproducible. Every arrival is
counted by request body in `received`, so a test can tell exactly what a client sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from selftrain.samplers.base import Sampler, SamplingParams

log = logging.getLogger(__name__)

FAULT_KINDS = ("429", "500", "slow", "truncated", "drop")


def request_key(body: dict[str, Any]) -> str:
    """A request's identity: a hash of its JSON body (key order does not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _unit(*parts: Any) -> float:
    """A number in [0, 1) drawn from a hash of the parts."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16) / 16**15


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often.

    Each attempt of a request gets a fault with probability `rate`, its kind drawn evenly
    from `kinds`; a fraction `permanent` of requests (by body) fail with 500 on every attempt.
    """

    rate: float = 0.0
    kinds: Sequence[str] = FAULT_KINDS
    permanent: float = 0.0
    retry_after: float = 1.0
    """Seconds sent in the Retry-After header of a 429."""
    slow_seconds: float = 3.0
    """How long a slow reply takes: set it past the client's timeout."""
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")

    def is_permanent(self, key: str) -> bool:
        return bool(self.permanent) and _unit(self.seed, key, "permanent") < self.permanent

    def pick(self, key: str, attempt: int) -> str | None:
        if self.is_permanent(key):
            return "500"
        if self.rate and _unit(self.seed, key, attempt) < self.rate:
            return self.kinds[int(_unit(self.seed, key, attempt, "kind") * len(self.kinds))]
        return None


@dataclass
class _Job:
    prompt: str
    params: SamplingParams
    seed: int
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    error: BaseException | None = None


class ModelServer:
    """Serves a sampler over HTTP on localhost; `with ModelServer(...) as server:` runs it in
    a background thread and `server.url` is the base URL to give a client."""

    def __init__(
        self,
        sampler: Sampler,
        model_name: str = "local",
        tokenizer: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_size: int = 16,
        faults: Faults | None = None,
        batch_wait: float = 0.005,
    ):
        self.sampler = sampler
        self.model_name = model_name
        self.tokenizer = tokenizer if tokenizer is not None else getattr(sampler, "tokenizer", None)
        self.batch_size = batch_size
        self.faults = faults or Faults()
        self.batch_wait = batch_wait
        self.received: Counter[str] = Counter()
        self.faults_sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        """(time, body) of every request, in order of arrival."""
        self._http = _HTTPServer((host, port), _handler_for(self))
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ModelServer:
        for target in (self._generate_loop, self._http.serve_forever):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=10)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        threading.Thread(target=self._generate_loop, daemon=True).start()
        try:
            self._http.serve_forever()
        finally:
            self._http.server_close()

    # generation: one thread, requests that arrive together decoded as one batch
    def _generate_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(jobs) < self.batch_size:
                try:
                    job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)
                    break
                jobs.append(job)
            groups: dict[SamplingParams, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.params, []).append(job)
            for params, group in groups.items():
                try:
                    texts = self.sampler.generate([j.prompt for j in group], params, group[0].seed)
                    for job, text in zip(group, texts):
                        job.text = text
                except Exception as err:  # the request fails with 500, the server lives on
                    log.exception("generation failed")
                    for job in group:
                        job.error = err
                for job in group:
                    job.done.set()

    def complete(self, prompt: str, params: SamplingParams, seed: int) -> str:
        job = _Job(prompt, params, seed)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.text

    def chat_prompt(self, messages: list[dict[str, Any]]) -> str:
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m.get('content', '')}\n" for m in messages)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def arrival(self, body: dict[str, Any]) -> str | None:
        """Count an arrival of this body; the fault this attempt gets, if any."""
        key = request_key(body)
        with self._lock:
            self.arrivals.append((time.monotonic(), body))
            self.received[key] += 1
            attempt = self.received[key]
        fault = self.faults.pick(key, attempt)
        if fault:
            with self._lock:
                self.faults_sent[fault] += 1
        return fault


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many clients connect at once; the default 5 refuses them


class _BadRequest(Exception):
    pass


def _params(body: dict[str, Any]) -> tuple[SamplingParams, int, list[str], int]:
    try:
        params = SamplingParams(
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            top_k=int(body.get("top_k", 0) or 0),
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 16),
        )
        seed = int(body.get("seed") or 0)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        n = int(body.get("n", 1) or 1)
    except (TypeError, ValueError) as err:
        raise _BadRequest(f"bad sampling parameters: {err}") from None
    if n < 1 or n > 16:
        raise _BadRequest("n must be between 1 and 16")
    return params, seed, stop, n


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a dropped one ends cleanly

        def log_message(self, fmt, *args):  # quiet; the counters tell what happened
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None, cut: bool = False) -> None:
            data = json.dumps(obj).encode()
            if cut:
                data = data[: len(data) // 2]
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to do

        def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model", "owned_by": "selftrain"}]})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self):
            route = self.path.rstrip("/")
            if route not in ("/v1/chat/completions", "/v1/completions"):
                return self._error(404, f"no route {self.path}", "not_found")
            try:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client went away mid-request: nothing arrived
                    self.close_connection = True
                    return None
                if not raw:
                    raise ValueError("the body is empty")
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
            except ValueError as err:
                return self._error(400, f"invalid JSON body: {err}", "invalid_request_error")
            fault = server.arrival(body)
            if fault == "429":
                return self._error(429, "rate limited (injected)", "rate_limit_error", {"Retry-After": f"{server.faults.retry_after:g}"})
            if fault == "500":
                return self._error(500, "internal error (injected)", "server_error")
            if fault == "drop":
                self.close_connection = True
                return  # nothing written: the client sees the connection close
            if fault == "slow":
                time.sleep(server.faults.slow_seconds)
            try:
                reply = self._complete(route, body)
            except _BadRequest as err:
                return self._error(400, str(err), "invalid_request_error")
            except Exception as err:
                return self._error(500, f"generation failed: {err}", "server_error")
            self._send(200, reply, cut=fault == "truncated")

        def _complete(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
            params, seed, stop, n = _params(body)
            chat = route.endswith("chat/completions")
            if chat:
                messages = body.get("messages")
                if not isinstance(messages, list) or not messages:
                    raise _BadRequest("'messages' must be a non-empty list")
                prompt = server.chat_prompt(messages)
            else:
                prompt = body.get("prompt")
                if not isinstance(prompt, str):
                    raise _BadRequest("'prompt' must be a string")
            choices, completion_tokens = [], 0
            for i in range(n):
                text, stopped = _cut_at_stop(server.complete(prompt, params, seed + i), stop)
                used = server.count_tokens(text)
                completion_tokens += used
                finish = "stop" if stopped or used < params.max_new_tokens else "length"
                if chat:
                    choices.append({"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
                else:
                    choices.append({"index": i, "text": text, "finish_reason": finish, "logprobs": None})
            prompt_tokens = server.count_tokens(prompt)
            return {
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": body.get("model", server.model_name),
                "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            }

    return Handler
