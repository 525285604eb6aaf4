"""Grounded question answering from documents: a teacher writes questions and answers about
each chunk of a folder of documents; only pairs a judge finds answerable from the chunk
alone are kept.

    1. chunk: each Markdown or text file is split at blank lines into paragraphs, packed
       into chunks of at most `chunk_chars` characters; a chunk carries the Markdown
       headings above it (so "## Install" gives the chunk its subject)
    2. write: the teacher writes `pairs_per_chunk` question-answer pairs per chunk
    3. filter, cheapest first (every rejection is kept with its reason, for human review):
       - format: a question ending in "?" and a non-empty answer
       - duplicate question
       - support: too few of the answer's content words appear in the chunk (a cheap
         hallucination check; `min_support`)
       - judge: the teacher, with the `grounded` judge template (verifiers/judge.py), says
         whether the question is answerable from the chunk alone and the answer supported;
         `judge_samples` judgements are averaged and the pair kept at >= `keep_threshold`
    4. write `RUN/data.jsonl` (question, answer, the source chunk, its file and character
       span, lineage with the judge's score) and `RUN/rejected.jsonl` (every dropped pair
       and why)

Run it:  `selftrain run configs/grounded-qa.yaml`
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir, fingerprint, read_jsonl, write_jsonl
from selftrain.config import RunBase, TeacherConfig, _Section
from selftrain.errors import TaskDataError
from selftrain.methods import Method
from selftrain.novelty import rouge_tokens
from selftrain.report import escape, kv_table, page
from selftrain.samplers.base import Failed, Sampler, SamplingParams, generate_or_fail
from selftrain.verifiers.judge import TEMPLATES


class GroundedQASection(_Section):
    """Grounded QA: question-answer pairs written per chunk of a folder of documents."""

    teacher: TeacherConfig = TeacherConfig()
    """The model that writes the pairs and judges them."""
    documents: str = "docs"
    patterns: list[str] = ["*.md", "*.txt"]
    chunk_chars: int = Field(1200, ge=100)
    max_chunks: int | None = Field(None, ge=1)
    pairs_per_chunk: int = Field(3, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    """Least fraction of the answer's content words that must appear in the chunk."""
    judge_samples: int = Field(1, ge=1)
    judge_temperature: float = Field(0.0, ge=0.0)
    judge_max_new_tokens: int = Field(96, ge=1)
    keep_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A pair is kept when the mean judge score (0 or 1 each) reaches this."""


class GroundedQAConfig(RunBase):
    name: str = "grounded-qa"
    method: Literal["grounded-qa"] = "grounded-qa"
    grounded_qa: GroundedQASection = GroundedQASection()


def run(ctx: stages.RunContext) -> None:
    """Grounded QA, steps numbered as in the docstring."""
    sec = ctx.cfg.grounded_qa
    # step 1: chunk the documents
    chunks = chunk_documents(sec.documents, sec.chunk_chars, tuple(sec.patterns))[: sec.max_chunks]
    teacher = ctx.sampler(sec.teacher.model, sec.teacher)
    # step 2: the teacher writes question-answer pairs per chunk
    written = write_pairs(ctx, teacher, chunks)
    # steps 3-4: filter (format, duplicates, support, the judge), then decontaminate
    # -> RUN/data.jsonl, RUN/rejected.jsonl, RUN/contaminated.jsonl
    judged = judge_pairs(ctx, teacher, written)
    stages.decontaminate(ctx, "", judged, ("question", "answer"))

log = logging.getLogger(__name__)

WRITE_PROMPT = """Read the passage below, taken from the document "{source}". Write {n} different questions that a reader could ask and that the passage alone answers, each followed by its answer taken from the passage. Use this format:
Q: <question>
A: <answer>

Passage:
{chunk}"""

STOPWORDS = frozenset("a an the of to in on for and or is are was were be been it its this that these those with as by at "
                      "from what which who whom how why when where do does did can could should would will you your".split())


@dataclass(frozen=True)
class Chunk:
    id: str
    path: str
    start: int
    end: int
    headings: str
    text: str

    def passage(self) -> str:
        return f"{self.headings}\n{self.text}".strip() if self.headings else self.text


def chunk_documents(folder: str | Path, chunk_chars: int = 1200, patterns: tuple[str, ...] = ("*.md", "*.txt")) -> list[Chunk]:
    """Every matching file under `folder`, in path order, split into chunks of at most
    `chunk_chars` characters at paragraph boundaries (a longer paragraph is its own chunk)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskDataError(f"no documents folder at {folder} (grounded_qa.documents)")
    files = sorted({p for pat in patterns for p in folder.rglob(pat) if p.is_file()})
    if not files:
        raise TaskDataError(f"no {' or '.join(patterns)} files under {folder}")
    chunks: list[Chunk] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = str(path.relative_to(folder))
        headings: dict[int, str] = {}
        current: list[tuple[int, int]] = []  # (start, end) of paragraphs in the chunk being packed
        n = 0

        def flush():  # called within this file's iteration only
            nonlocal n, current
            if current:
                start, end = current[0][0], current[-1][1]
                context = " > ".join(headings[k] for k in sorted(headings))  # noqa: B023
                chunks.append(Chunk(f"{rel}#{n}", rel, start, end, context, text[start:end].strip()))  # noqa: B023
                n += 1
                current = []

        for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", text):
            para = m.group().strip()
            if not para:
                continue
            heading = re.match(r"^(#{1,6})\s+(.*)", para)
            if heading and "\n" not in para:
                flush()
                level = len(heading.group(1))
                headings = {k: v for k, v in headings.items() if k < level}
                headings[level] = heading.group(2).strip()
                continue
            if current and m.end() - current[0][0] > chunk_chars:
                flush()
            current.append((m.start(), m.end()))
        flush()
    return chunks


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """Q/A pairs from the teacher's output (numbering and bold markers allowed).

    >>> parse_pairs("1. Q: What is X?\\nA: A tool.\\n\\n**Q:** Who?\\n**A:** Ann")
    [('What is X?', 'A tool.'), ('Who?', 'Ann')]
    """
    pairs = []
    pattern = r"(?:^|\n)[\s\d.)*-]*(?:\*\*)?Q(?:uestion)?\s*\d*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)\s*\n[\s*-]*(?:\*\*)?A(?:nswer)?\s*\d*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)(?=\n[\s\d.)*-]*(?:\*\*)?Q(?:uestion)?\s*\d*(?:\*\*)?\s*[:：]|\n\s*\n|$)"
    for q, a in re.findall(pattern, text, re.S):
        pairs.append((" ".join(q.split()), " ".join(a.split())))
    return pairs


def support(answer: str, chunk: str) -> float:
    """The fraction of the answer's content words (not stop words) found in the chunk; 1.0
    for an answer with none.

    >>> support("It runs on a CPU", "selftrain runs offline on a CPU.")
    1.0
    >>> support("Paris is the capital", "The capital is Rome.")
    0.5
    """
    words = [w for w in rouge_tokens(answer) if w not in STOPWORDS]
    if not words:
        return 1.0
    present = set(rouge_tokens(chunk))
    return sum(w in present for w in words) / len(words)


def write_pairs(ctx: stages.RunContext, teacher: Sampler, chunks: list[Chunk]) -> stages.Artifact:
    """The teacher's raw pairs per chunk -> RUN/written.jsonl."""
    sec, out = ctx.cfg.grounded_qa, ctx.path("written.jsonl")

    def write() -> dict[str, Any]:
        prompts = [WRITE_PROMPT.format(source=c.path, n=sec.pairs_per_chunk, chunk=c.passage()) for c in chunks]
        params = SamplingParams(temperature=sec.temperature, top_p=sec.top_p, max_new_tokens=sec.max_new_tokens)
        outputs = generate_or_fail(teacher, prompts, params, ctx.cfg.seed)
        rows, failed = [], 0
        for c, o in zip(chunks, outputs):
            if isinstance(o, Failed):
                failed += 1
                rows.append({"chunk": asdict(c), "raw": None, "error": o.error})
            else:
                rows.append({"chunk": asdict(c), "raw": o})
        write_jsonl(out, rows)
        return {"chunks": len(chunks), "requests_failed": failed}

    fp = fingerprint([asdict(c) for c in chunks], sec.model_dump(), ctx.cfg.seed)
    ctx.stage("write", fp, write)
    return stages.Artifact(out, fp)


def judge_pairs(ctx: stages.RunContext, teacher: Sampler, written: stages.Artifact) -> stages.Artifact:
    """Pairs filtered, cheapest check first -> RUN/judged.jsonl and RUN/rejected.jsonl."""
    sec, template = ctx.cfg.grounded_qa, TEMPLATES["grounded"]

    def judge() -> dict[str, Any]:
        candidates, rejected, counts = [], [], Counter()
        seen: set[str] = set()
        for w in read_jsonl(written.path):
            chunk = Chunk(**w["chunk"])
            if w["raw"] is None:
                continue
            pairs = parse_pairs(w["raw"])[: sec.pairs_per_chunk]
            counts["parsed"] += len(pairs)
            if not pairs:
                rejected.append({"chunk_id": chunk.id, "question": None, "answer": None, "reason": "no Q/A pair in the output",
                                 "raw": w["raw"][:500]})
            for q, a in pairs:
                reason = None
                if not q.endswith("?") or not a:
                    reason = "format"
                elif q.lower() in seen:
                    reason = "duplicate question"
                elif (supported := support(a, chunk.passage())) < sec.min_support:
                    reason = f"support {supported:.2f} < {sec.min_support}"
                if reason:
                    counts[reason.split(" ")[0]] += 1
                    rejected.append({"chunk_id": chunk.id, "question": q, "answer": a, "reason": reason})
                    continue
                seen.add(q.lower())
                candidates.append((chunk, q, a))
        prompts = [template.format(f"Passage:\n{c.passage()}\n\nQuestion: {q}", a)
                   for c, q, a in candidates for _ in range(sec.judge_samples)]
        params = SamplingParams(temperature=sec.judge_temperature, max_new_tokens=sec.judge_max_new_tokens)
        outputs = generate_or_fail(teacher, prompts, params, ctx.cfg.seed + 1)
        rows = []
        for i, (c, q, a) in enumerate(candidates):
            judged = outputs[i * sec.judge_samples:(i + 1) * sec.judge_samples]
            scores = [template.parse(o)[0] for o in judged if not isinstance(o, Failed)]
            scores = [s for s in scores if s is not None]
            score = sum(scores) / len(scores) if scores else None
            if score is None or score < sec.keep_threshold:
                why = "judge: no readable verdict" if score is None else f"judge: score {score:.2f} < {sec.keep_threshold}"
                counts["judge"] += 1
                rejected.append({"chunk_id": c.id, "question": q, "answer": a, "reason": why,
                                 "judgement": next((o for o in judged if isinstance(o, str)), None)})
                continue
            rows.append({
                "question": q, "answer": a, "chunk": c.passage(),
                "source": {"path": c.path, "chunk_id": c.id, "start": c.start, "end": c.end},
                "lineage": {"method": "grounded-qa", "iteration": 0, "model": sec.teacher.model,
                            "prompt_id": c.id, "score": score},
            })
        write_jsonl(ctx.path("judged.jsonl"), rows)
        write_jsonl(ctx.path("rejected.jsonl"), rejected)
        return {"kept": len(rows), "rejected": dict(counts), "judged": len(candidates)}

    fp = fingerprint(written.fp, sec.judge_samples, sec.keep_threshold, sec.min_support, sec.judge_temperature,
                     sec.judge_max_new_tokens)
    ctx.stage("judge", fp, judge)
    return stages.Artifact(ctx.path("judged.jsonl"), fp)


def collect(run: RunDir, cfg: GroundedQAConfig) -> dict[str, Any]:
    write, judge = run.record("write"), run.record("judge")
    data = read_jsonl(run.path("data.jsonl")) if run.path("data.jsonl").exists() else []
    failed_file = run.path("failed-requests.jsonl")
    return {
        "method": "grounded-qa", "name": cfg.name, "seed": cfg.seed, "teacher": cfg.grounded_qa.teacher.model,
        "write": write.info if write else {}, "judge": judge.info if judge else {}, "rows": len(data),
        "seconds": {n: r.seconds for n, r in (("write", write), ("judge", judge)) if r},
        "failed_requests": len(failed_file.read_text().splitlines()) if failed_file.exists() else 0,
        "examples": data[:8],
    }


def render(metrics: dict[str, Any]) -> str:
    j = metrics["judge"]
    rows = [("teacher (and judge)", metrics["teacher"]), ("chunks", metrics["write"].get("chunks")),
            ("pairs parsed", j.get("rejected", {}).get("parsed")), ("pairs judged", j.get("judged")),
            ("pairs kept", metrics["rows"]),
            *[(f"dropped: {k}", v) for k, v in j.get("rejected", {}).items() if k != "parsed"],
            ("requests failed after every retry", metrics["failed_requests"])]
    table = kv_table(rows)
    examples = "".join(f"<li><b>{escape(e['question'])}</b> {escape(e['answer'])}<br><small>{escape(e['source']['chunk_id'])}, "
                       f"judge {e['lineage']['score']}</small></li>" for e in metrics["examples"])
    return page(f"selftrain: {escape(metrics['name'])}",
                 f"<p>Grounded QA: pairs written per chunk and kept when the judge finds them answerable from the "
                 f"chunk alone; every dropped pair is in rejected.jsonl with its reason.</p>{table}"
                 f"<h2>First rows of data.jsonl</h2><ol>{examples}</ol>")


def summary(metrics: dict[str, Any]) -> list[str]:
    return [f"pairs kept {metrics['rows']} of {metrics['judge'].get('rejected', {}).get('parsed')} written, "
            f"failed requests {metrics['failed_requests']}"]


MOVED = {"teacher": "grounded_qa.teacher"}

METHOD = Method("grounded-qa", GroundedQAConfig, run, collect, render, summary,
                needs=lambda cfg: [("grounded_qa.teacher", cfg.grounded_qa.teacher, set())], moved=MOVED)
