"""Human review of a run's generated rows: a local web page, decisions kept in SQLite.

`selftrain review RUN` serves a page over every generated row of the run: the kept ones
(each `data.jsonl`, the data a method trains on) and the rejected ones (`contaminated.jsonl`,
`rejected.jsonl`, the samples a verifier scored 0), with lineage, scores and the reason for
each rejection. A person accepts, rejects or edits each row, by mouse or keyboard (j/k to
move, a accept, r reject, e edit, Ctrl+Enter to save an edit), and filters by status or
reason. Every decision is written to `RUN/review.sqlite` at once (one transaction each), so
a killed server loses none. Rows are keyed by a hash of their content, so decisions
survive reruns: the decontaminate stage (`selftrain.stages.decontaminate`) drops rows a
person rejected and uses a person's edits, and a rerun of the method retrains on that.

Binds to 127.0.0.1 unless told otherwise. A generated row is untrusted text: the page
writes it with `textContent`, never as HTML, and the server sends a strict CSP.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from selftrain.artifacts import read_jsonl, write_jsonl

TEXT_FIELDS = ("prompt", "completion", "chosen", "rejected", "instruction", "input", "output", "question", "answer")


def row_key(row: dict[str, Any]) -> str:
    """A stable key for a row: the hash of its content."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]


class ReviewStore:
    """Decisions by row key in `RUN/review.sqlite`; each write is committed at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS decisions (key TEXT PRIMARY KEY, status TEXT NOT NULL, "
                         "edited TEXT, updated REAL NOT NULL)")

    def decide(self, key: str, status: str, edited: dict[str, Any] | None = None) -> None:
        if status not in ("accepted", "rejected", "edited"):
            raise ValueError(f"status must be accepted, rejected or edited, not {status!r}")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?)",
                             (key, status, json.dumps(edited) if edited is not None else None, time.time()))

    def all(self) -> dict[str, tuple[str, dict[str, Any] | None]]:
        with self._lock:
            rows = self._db.execute("SELECT key, status, edited FROM decisions").fetchall()
        return {k: (s, json.loads(e) if e else None) for k, s, e in rows}

    def close(self) -> None:
        self._db.close()


def decisions(run_dir: str | Path) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """The decisions of a run folder's review, or none when nobody reviewed it."""
    path = Path(run_dir) / "review.sqlite"
    if not path.exists():
        return {}
    store = ReviewStore(path)
    try:
        return store.all()
    finally:
        store.close()


@dataclass
class Row:
    key: str
    group: str
    source: str
    """The file it comes from."""
    generated: str
    """`kept` or `rejected` (by the method's filters)."""
    reason: str
    fields: dict[str, str]
    lineage: dict[str, Any] | None
    score: Any

    def to_json(self) -> dict[str, Any]:
        return self.__dict__


def collect_rows(run_dir: str | Path, max_rejected_per_file: int = 2000) -> list[Row]:
    """Every generated row of a run: kept (`data.jsonl`) and rejected, with its reason."""
    root = Path(run_dir)
    rows: list[Row] = []

    def text_fields(r: dict[str, Any]) -> dict[str, str]:
        return {k: r[k] for k in TEXT_FIELDS if isinstance(r.get(k), str)}

    for data in sorted(root.rglob("data.jsonl")):
        group = str(data.parent.relative_to(root))
        for r in read_jsonl(data):
            rows.append(Row(row_key(r), group, str(data.relative_to(root)), "kept", "", text_fields(r), r.get("lineage"),
                            (r.get("lineage") or {}).get("score")))
        dirty = data.with_name("contaminated.jsonl")
        if dirty.exists():
            for r in read_jsonl(dirty)[:max_rejected_per_file]:
                item = r["test_item"]
                rows.append(Row(row_key(r["row"]), group, str(dirty.relative_to(root)), "rejected",
                                f"contaminated: overlaps {item['source']} item {item['id']}", text_fields(r["row"]),
                                r["row"].get("lineage"), None))
    for rejected in sorted(root.rglob("*rejected.jsonl")):
        group = str(rejected.parent.relative_to(root))
        for r in read_jsonl(rejected)[:max_rejected_per_file]:
            rows.append(Row(row_key(r), group, str(rejected.relative_to(root)), "rejected", str(r.get("reason", "")),
                            text_fields(r), None, r.get("judgement")))
    for scores in sorted(root.rglob("scores.jsonl")):
        samples = scores.with_name("samples.jsonl")
        if not samples.exists() or scores.parent.name in ("sft", "compute-matched"):
            continue
        group = str(scores.parent.relative_to(root))
        n = 0
        for sample, score in zip(read_jsonl(samples), read_jsonl(scores)):
            if score.get("value") not in (None, 0, 0.0) or n >= max_rejected_per_file:
                continue
            n += 1
            row = {"prompt": sample["prompt"], "completion": sample["completion"]}
            rows.append(Row(row_key(row), group, str(samples.relative_to(root)), "rejected",
                            f"verifier: {score.get('reason', '')}", row, None, score.get("value")))
    return rows


def export(run_dir: str | Path, out: str | Path) -> dict[str, int]:
    """The reviewed dataset: every kept row a person did not reject (with a person's edits),
    each marked `review: {status, changed}`."""
    taken = decisions(run_dir)
    kept = []
    for row in collect_rows(run_dir):
        status, edited = taken.get(row.key, ("unreviewed", None))
        if row.generated != "kept" or status == "rejected":
            continue
        kept.append({"group": row.group, **row.fields, **(edited or {}), "lineage": row.lineage,
                     "review": {"status": status, "changed": edited is not None}})
    write_jsonl(Path(out), kept)
    return {"rows": len(kept), "changed": sum(r["review"]["changed"] for r in kept)}


def apply_review(taken: dict[str, tuple[str, dict[str, Any] | None]], rows: list[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], int, int]:
    """Rows a person rejected (in `taken`, from `decisions`) dropped, edits applied:
    (rows, rejected, edited)."""
    out, rejected, edited = [], 0, 0
    for r in rows:
        status, change = taken.get(row_key(r), ("unreviewed", None))
        if status == "rejected":
            rejected += 1
            continue
        if change:
            edited += 1
            r = {**r, **change}
        out.append(r)
    return out, rejected, edited


PAGE = (Path(__file__).parent / "review.html")


class ReviewServer:
    """The review page and its small JSON API over one run folder."""

    def __init__(self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765):
        self.root = Path(run_dir)
        if not (self.root / "config.yaml").exists():
            from selftrain.errors import SelftrainError

            raise SelftrainError(f"{self.root} is not a run folder (no config.yaml)")
        self.rows = collect_rows(self.root)
        self.by_key = {r.key: r for r in self.rows}
        self.store = ReviewStore(self.root / "review.sqlite")
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"

    def _listing(self, query: dict[str, list[str]]) -> dict[str, Any]:
        taken = self.store.all()
        want = {k: v[0] for k, v in query.items() if v and v[0]}
        out = []
        for r in self.rows:
            review = taken.get(r.key, ("unreviewed", None))
            if want.get("generated") and r.generated != want["generated"]:
                continue
            if want.get("review") and review[0] != want["review"]:
                continue
            if want.get("reason") and want["reason"].lower() not in r.reason.lower():
                continue
            out.append({**r.to_json(), "review": review[0], "edited": review[1]})
        offset, limit = int(want.get("offset", 0)), min(int(want.get("limit", 200)), 1000)
        reviewed = sum(1 for r in self.rows if r.key in taken)
        return {"rows": out[offset : offset + limit], "matching": len(out), "total": len(self.rows), "reviewed": reviewed,
                "reasons": sorted({r.reason.split(":")[0] for r in self.rows if r.reason})}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the terminal shows only the URL
                pass

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; "
                                 "style-src 'unsafe-inline'; img-src 'none'; connect-src 'self'")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: Any) -> None:
                self._send(code, json.dumps(obj).encode(), "application/json")

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/":
                    self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                elif url.path == "/api/rows":
                    self._json(200, server._listing(parse_qs(url.query)))
                else:
                    self._json(404, {"error": f"no route {url.path}"})

            def do_POST(self) -> None:
                if urlparse(self.path).path != "/api/decide":
                    return self._json(404, {"error": "no route"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    key, status = body["key"], body["status"]
                    if key not in server.by_key:
                        return self._json(404, {"error": f"no row {key}"})
                    edited = body.get("edited")
                    if edited is not None:
                        allowed = server.by_key[key].fields
                        edited = {k: str(v) for k, v in edited.items() if k in allowed}
                    server.store.decide(key, status, edited)
                except (KeyError, ValueError, json.JSONDecodeError) as err:
                    return self._json(400, {"error": str(err)})
                self._json(200, {"ok": True})

        return Handler

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> ReviewServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
