"""Any OpenAI-compatible endpoint as a sampler: async, bounded, retried, cached, accounted.

    sampler = OpenAISampler("https://api.openai.com/v1", "gpt-4o-mini", cache="runs/x/api-cache.sqlite")
    texts = sampler.generate(prompts, SamplingParams(temperature=0.7, max_new_tokens=256), seed=0)

- **Bounded concurrency**: at most `max_concurrency` requests in flight (one event loop,
  the `openai` package's async client; its own retries are off, these are ours).
- **Retries** with exponential backoff and jitter on 429, 408/409, 5xx, timeouts, dropped
  connections and replies that are not valid JSON (or carry no text); a 429's Retry-After
  (or retry-after-ms) is honoured. Other 4xx errors (a bad key, an unknown model) are not
  retried. After `max_retries` retries a row is failed.
- **A response cache keyed by content**: model, mode, the messages or prompt, the sampling
  parameters and the seed. Each answer is committed to SQLite as it arrives, so a rerun, or
  a run resumed after `kill -9`, sends only the requests that never got an answer; nobody
  pays twice. Identical requests in one call are sent once.
- **Failed rows are never dropped and never None**: `complete` returns a `Failed` in their
  place (with the error and the attempts), `failed_path` gets one JSON line per failed
  row, and `generate` (which must return text for every prompt) raises `SamplerFailed`
  naming that file. Failed rows are not cached: the next run asks again.
- **Progress**: a live bar with done, cached, retried and failed rows and tokens used;
  `stats` keeps the totals.

K samples of one prompt are K requests with distinct seeds (`seed`, then the position of
the copy), so each is cached separately and a rerun gets the same K texts back.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selftrain import faults
from selftrain.artifacts import atomic_write_text, fingerprint
from selftrain.errors import ConfigError, SelftrainError
from selftrain.samplers.base import Failed, SamplingParams

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class SamplerFailed(SelftrainError):
    """Some rows still failed after every retry."""


@dataclass(frozen=True)
class ApiRequest:
    """One request: `prompt` is the user message (chat) or the raw prompt (completion)."""

    prompt: str
    params: SamplingParams
    seed: int
    id: str = ""
    """The row it belongs to (written to the failed-rows file)."""
    system: str | None = None
    stop: tuple[str, ...] = ()
    turns: tuple[tuple[str, str], ...] = ()
    """Earlier (user, assistant) turns before the prompt: a chat model's few-shot examples."""


@dataclass
class ApiStats:
    requests: int = 0
    cached: int = 0
    done: int = 0
    retried: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: ApiStats) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


class ResponseCache:
    """Answers by request key in SQLite (or in memory without a path); each put commits."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
        )
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM responses WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, text: str, finish_reason: str | None, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (key, text, finish_reason, prompt_tokens, completion_tokens, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason, self.wait = reason, wait


class _GiveUp(Exception):
    pass


def _retry_after(response: Any) -> float | None:
    """Seconds a 429 (or 503) asks us to wait, from retry-after-ms or Retry-After."""
    headers = getattr(response, "headers", None) or {}
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        date = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, date.timestamp() - time.time()) if date else None


class OpenAISampler:
    """A sampler over an OpenAI-compatible endpoint (OpenAI, vLLM, `selftrain serve`, ...).

    The API key is read from the environment variable `api_key_env`; a server on localhost
    needs none.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        mode: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 16,
        max_retries: int = 6,
        timeout: float = 60.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        cache: str | Path | None = None,
        failed_path: str | Path | None = None,
        system: str | None = None,
        progress: bool = True,
        turns: Sequence[tuple[str, str]] = (),
    ):
        if mode not in ("chat", "completion"):
            raise ConfigError(f"mode must be 'chat' or 'completion', not {mode!r}")
        self.base_url, self.model, self.mode = base_url.rstrip("/"), model, mode
        self.api_key = os.environ.get(api_key_env)
        if not self.api_key:
            if any(f"//{h}" in self.base_url for h in LOCAL_HOSTS):
                self.api_key = "none"
            else:
                raise ConfigError(f"set the API key for {self.base_url} in the environment variable {api_key_env}")
        self.max_concurrency, self.max_retries, self.timeout = max_concurrency, max_retries, timeout
        self.backoff, self.max_backoff = backoff, max_backoff
        self.cache = ResponseCache(cache)
        self.failed_path = Path(failed_path) if failed_path else None
        self.system, self.progress, self.turns = system, progress, tuple(tuple(t) for t in turns)
        self.stats = ApiStats()
        self.last_stats = ApiStats()
        self._rng = random.Random()
        self._answered = 0
        """Answers received and cached by this sampler (the fault point `openai:answer<n>`)."""

    # the Sampler interface
    def generate(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        results = self.generate_or_fail(prompts, params, seed)
        failed = [r for r in results if isinstance(r, Failed)]
        if failed:
            where = f"; they are listed in {self.failed_path}" if self.failed_path else ""
            raise SamplerFailed(
                f"{len(failed)} of {len(prompts)} requests to {self.base_url} failed after {self.max_retries} retries "
                f"(first: {failed[0].error}){where}. Rerun to ask again: answers already received are cached."
            )
        return results  # type: ignore[return-value]

    def generate_or_fail(self, prompts: Sequence[str], params: SamplingParams, seed: int) -> list[str | Failed]:
        """Text for each prompt, or a `Failed` where every retry failed."""
        copies: dict[str, int] = {}
        requests = []
        for i, p in enumerate(prompts):
            k = copies[p] = copies.get(p, -1) + 1
            requests.append(ApiRequest(p, params, seed + k if k else seed, id=str(i), system=self.system, turns=self.turns))
        return self.complete(requests)

    def continue_texts(self, prompts: Sequence[str], starts: Sequence[str], params: SamplingParams, seed: int) -> list[str]:
        """Completion mode: the prompt and the start joined, completed. A chat endpoint cannot
        be prefilled (the sampler factory refuses such a config before any work)."""
        if self.mode == "chat":
            raise ConfigError("a chat-completions endpoint cannot continue a started answer; set chat: false")
        return self.generate([p + s for p, s in zip(prompts, starts)], params, seed)

    # requests
    def key(self, request: ApiRequest) -> str:
        return fingerprint(self.model, self.mode, self._payload(request))

    def _payload(self, r: ApiRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": r.params.temperature,
            "top_p": r.params.top_p,
            "max_tokens": r.params.max_new_tokens,
            "seed": r.seed,
        }
        if r.params.top_k:
            body["extra_body"] = {"top_k": r.params.top_k}
        if r.stop:
            body["stop"] = list(r.stop)
        if self.mode == "chat":
            from selftrain.samplers.chat import chat_messages

            body["messages"] = chat_messages(r.prompt, r.system, r.turns)
        else:
            body["prompt"] = r.prompt
        return body

    def complete(self, requests: Sequence[ApiRequest]) -> list[str | Failed]:
        """Answers in order: each from the cache, or asked for, or `Failed`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acomplete(requests))
        raise SelftrainError("OpenAISampler.complete was called inside an event loop: await acomplete() instead")

    async def acomplete(self, requests: Sequence[ApiRequest]) -> list[str | Failed]:
        import openai

        stats = ApiStats(requests=len(requests))
        payloads = [self._payload(r) for r in requests]
        keys = [fingerprint(self.model, self.mode, p) for p in payloads]
        copies = Counter(keys)
        answers: dict[str, str | Failed] = {}
        todo: dict[str, dict[str, Any]] = {}
        for key, r in zip(keys, payloads):
            if key in answers or key in todo:
                continue
            cached = self.cache.get(key)
            if cached is not None:
                answers[key] = cached
                stats.cached += 1
            else:
                todo[key] = r
        bar = _Progress(len(requests), stats, self.progress)
        stats.done = len(requests) - len(todo)
        bar.update()
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout)
        gate = asyncio.Semaphore(self.max_concurrency)
        failed_rows: list[dict[str, Any]] = []

        by_key = dict(zip(keys, requests))

        async def one(key: str, payload: dict[str, Any]) -> None:
            async with gate:
                result = await self._ask(client, key, payload, stats)
            if isinstance(result, Failed):
                stats.failed += 1
                r = by_key[key]
                failed_rows.append({"id": r.id, "key": key, "prompt": r.prompt, "seed": r.seed,
                                    "error": result.error, "attempts": result.attempts})
            answers[key] = result
            stats.done += copies[key]
            bar.update()

        try:
            await asyncio.gather(*(one(k, r) for k, r in todo.items()))
        finally:
            await client.close()
            bar.close()
            self.last_stats = stats
            self.stats.add(stats)
            if self.failed_path is not None and (failed_rows or self.failed_path.exists()):
                atomic_write_text(self.failed_path, "".join(json.dumps(row) + "\n" for row in failed_rows))
        if stats.failed or stats.retried:
            log.info("%s: %d requests, %d cached, %d retries, %d failed", self.base_url, stats.requests,
                     stats.cached, stats.retried, stats.failed)
        return [answers[k] for k in keys]

    async def _ask(self, client: Any, key: str, payload: dict[str, Any], stats: ApiStats) -> str | Failed:
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                stats.retried += 1
            try:
                text, finish, usage = await self._call(client, payload)
            except _Retry as err:
                last = err.reason
                wait = err.wait
            except _GiveUp as err:
                return Failed(str(err), attempt + 1)
            else:
                self.cache.put(key, text, finish, usage[0], usage[1])
                self._answered += 1
                faults.point(f"openai:answer{self._answered}")
                stats.prompt_tokens += usage[0]
                stats.completion_tokens += usage[1]
                return text
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + self._rng.random() / 2)
            await asyncio.sleep(min(wait, 60.0))
        return Failed(last, self.max_retries + 1)

    async def _call(self, client: Any, payload: dict[str, Any]) -> tuple[str, str | None, tuple[int, int]]:
        import openai

        try:
            if self.mode == "chat":
                resp = await client.chat.completions.create(**payload)
                choice = resp.choices[0] if resp.choices else None
                text = choice.message.content if choice else None
            else:
                resp = await client.completions.create(**payload)
                choice = resp.choices[0] if resp.choices else None
                text = choice.text if choice else None
        except openai.RateLimitError as err:
            raise _Retry("429 rate limited", _retry_after(err.response)) from None
        except openai.APIStatusError as err:
            if err.status_code in (408, 409) or err.status_code >= 500:
                raise _Retry(f"{err.status_code} {_short(err)}", _retry_after(err.response) if err.status_code == 503 else None) from None
            raise _GiveUp(f"{err.status_code} {_short(err)}") from None
        except openai.APITimeoutError:
            raise _Retry(f"timeout after {self.timeout:g} s") from None
        except openai.APIConnectionError as err:
            raise _Retry(f"connection: {_short(err)}") from None
        except (openai.APIResponseValidationError, ValueError, AttributeError, TypeError) as err:
            raise _Retry(f"malformed reply: {_short(err)}") from None
        if not isinstance(text, str):
            raise _Retry("reply without text")
        usage = getattr(resp, "usage", None)
        tokens = (getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)
        return text, getattr(choice, "finish_reason", None), tokens


def _short(err: BaseException) -> str:
    cause = err.__cause__ or err.__context__
    text = str(err) if not cause or str(err) not in ("Connection error.", "") else f"{err} ({type(cause).__name__}: {cause})"
    return " ".join(text.split())[:200]


@dataclass
class _Progress:
    """The stage's bar (`selftrain.ui`): requests answered, with cached / retried / failed counts."""

    total: int
    stats: ApiStats
    enabled: bool
    _bar: Any = field(default=None, init=False)
    _shown: int = field(default=0, init=False)

    def __post_init__(self):
        if self.enabled and self.total:
            from selftrain import ui

            self._bar = ui.Bar("requests", self.total)

    def update(self) -> None:
        if self._bar is None:
            return
        done = min(self.stats.done, self.total)
        self._bar.advance(done - self._shown)
        self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
