"""Human review in a real browser (Debian's chromium through Playwright): rows decided by
keyboard and edited, the server killed and restarted with every decision kept, a row's
script never run, the reviewed dataset exported, and a rerun of the method training only
on rows a person did not reject."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from fakes import (
    ScriptedSampler,
    oracle,  # the FAKE teacher's rule of the distillation tests
)

from selftrain.artifacts import read_jsonl
from selftrain.methods import parse_config
from selftrain.runs import run_method

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def hostile(prompt: str, seed: int, model: str) -> str:
    """The FAKE teacher's rule: the oracle's worked solutions, some opened with hostile HTML."""
    return (HOSTILE + " " if prompt.strip().split("+")[0].endswith("7") else "") + oracle(prompt)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(run, port):
    proc = subprocess.Popen([sys.executable, "-m", "selftrain", "review", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read()
    return proc


def _states(page):
    rows = page.locator(".row")
    rows.first.wait_for()
    return [(rows.nth(i).get_attribute("data-key"), rows.nth(i).get_attribute("data-review")) for i in range(rows.count())]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_review_in_a_browser_survives_a_killed_server_and_steers_the_rerun(tmp_path, tiny_cfg_dict):
    from playwright.sync_api import expect, sync_playwright

    from selftrain.samplers.serve import ModelServer

    rest_em = tiny_cfg_dict.pop("rest_em")
    tiny_cfg_dict["model"]["tiny"]["max_length"] = 192  # room for the hostile row
    d = {**tiny_cfg_dict, "name": "review-test", "method": "distill",
         "distill": {"rounds": 1, "student_sft": rest_em["sft"], "generate": {**rest_em["e_step"], "k": 1}}}
    run = tmp_path / "run"
    with ModelServer(ScriptedSampler(hostile)) as server:
        d["distill"]["teacher"] = {"backend": "openai", "base_url": server.url, "model": "oracle", "chat": False}
        cfg = parse_config(d)
        run_method(cfg, run)
        kept = read_jsonl(run / "round-01" / "data.jsonl")
        assert len(kept) == 24 and any("<script>" in r["completion"] for r in kept)

        port = _free_port()
        proc = _serve(run, port)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run"])
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.select_option("#f-generated", "kept")
                expect(page.locator("#progress")).to_contain_text("showing 24")
                total = int(re.search(r"/ (\d+)", page.text_content("#progress")).group(1))
                assert page.text_content("#progress").startswith("reviewed 0 /")
                # the hostile completion is shown as text, and none of its script ran
                assert page.evaluate("window.__pwned") is None
                assert HOSTILE in page.text_content("#rows")
                keys = [k for k, _ in _states(page)]
                page.keyboard.press("a")  # row 0 accepted
                expect(page.locator("#progress")).to_contain_text("reviewed 1 /")
                page.keyboard.press("r")  # row 1 rejected
                expect(page.locator("#progress")).to_contain_text("reviewed 2 /")
                page.keyboard.press("e")  # row 2 edited
                page.locator("#row-2 textarea[data-field=completion]").fill("EDITED BY A PERSON")
                page.keyboard.press("Control+Enter")
                expect(page.locator("#progress")).to_contain_text("reviewed 3 /")
                page.screenshot(path=str(tmp_path / "review.png"))

                proc.send_signal(signal.SIGKILL)  # no clean shutdown: decisions must already be on disk
                proc.wait()
                proc = _serve(run, port)
                page.goto(f"http://127.0.0.1:{port}/")
                page.select_option("#f-generated", "kept")
                expect(page.locator("#progress")).to_contain_text("showing 24")
                assert page.text_content("#progress").startswith(f"reviewed 3 / {total}")
                states = dict(_states(page))
                assert [states[k] for k in keys[:4]] == ["accepted", "rejected", "edited", "unreviewed"]
                assert "EDITED BY A PERSON" in page.text_content("#row-2")
                page.select_option("#f-review", "rejected")
                expect(page.locator(".row")).to_have_count(1)
                browser.close()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        out = tmp_path / "reviewed.jsonl"
        exported = subprocess.run([sys.executable, "-m", "selftrain", "review", str(run), "--export", str(out)],
                                  capture_output=True, text=True)
        assert exported.returncode == 0 and "wrote 23 reviewed rows (1 changed by a person)" in exported.stdout
        rows = read_jsonl(out)
        assert sum(r["review"]["changed"] for r in rows) == 1 and any(r["completion"] == "EDITED BY A PERSON" for r in rows)

        # the rerun trains only on rows a person did not reject, with the edit
        marks = {p.name: p.stat().st_mtime_ns for p in (run / "round-01").glob("*.done.json")}
        time.sleep(0.01)
        run_method(cfg, run)
    again = read_jsonl(run / "round-01" / "data.jsonl")
    assert len(again) == 23 and sum(r["completion"] == "EDITED BY A PERSON" for r in again) == 1
    redone = {p.name for p in (run / "round-01").glob("*.done.json") if p.stat().st_mtime_ns != marks.get(p.name)}
    assert redone == {"decontaminate.done.json", "train.done.json", "evaluate.done.json"}
    info = json.loads((run / "round-01" / "decontaminate.done.json").read_text())["info"]
    assert info["rejected_by_review"] == 1 and info["edited_by_review"] == 1
