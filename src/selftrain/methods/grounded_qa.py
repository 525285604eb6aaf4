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
       - judge: the teacher, with the `grounded` judge template (verifiers/llm_judge.py), says
         whether the question is answerable from the chunk alone and the answer supported;
         `judge.samples` judgements are averaged and the pair kept at >= `judge.keep_threshold`
    4. write `RUN/data.jsonl` (question, answer, the source chunk, its file and character
       span, lineage with the judge's score); every dropped pair is kept with its reason
       (`RUN/candidates.rejected.jsonl`: the cheap checks; `RUN/pairs.rejected.jsonl`: the
       judge), for human review

Run it:  `selftrain run configs/grounded-qa.yaml`
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selftrain import stages
from selftrain.artifacts import RunDir, read_jsonl
from selftrain.config import RunBase, Sampling, TeacherConfig, _Section
from selftrain.data.novelty import rouge_tokens
from selftrain.errors import TaskDataError
from selftrain.methods import Method
from selftrain.records import Problem
from selftrain.report import escape, kv_table, page


class GroundedJudging(Sampling):
    """Step 3's judge: the teacher with the `grounded` judge template (greedy by default)."""

    temperature: float = Field(0.0, ge=0.0)
    """0: greedy judgements."""
    max_new_tokens: int = Field(96, ge=1)
    """The longest judgement, in tokens."""
    samples: int = Field(1, ge=1)
    """Judgements per pair, averaged."""
    keep_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A pair is kept when the mean judge score (0 or 1 each) reaches this."""


class GroundedQASection(_Section):
    """Grounded QA: question-answer pairs written per chunk of a folder of documents."""

    teacher: TeacherConfig = TeacherConfig()
    """The model that writes the pairs and judges them."""
    documents: str = "docs"
    """The folder of documents (read recursively; relative: from the config file's folder)."""
    patterns: list[str] = ["*.md", "*.txt"]
    """The files of `documents` read."""
    chunk_chars: int = Field(1200, ge=100)
    """The longest chunk, in characters (paragraphs are packed up to it)."""
    max_chunks: int | None = Field(None, ge=1)
    """At most this many chunks (the first); None: all."""
    pairs_per_chunk: int = Field(3, ge=1)
    """Question-answer pairs the teacher writes per chunk."""
    write: Sampling = Sampling(temperature=0.7, top_p=0.9, max_new_tokens=256)
    """Step 2: how the teacher writes the pairs."""
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    """Least fraction of the answer's content words that must appear in the chunk."""
    judge: GroundedJudging = GroundedJudging()


class GroundedQAConfig(RunBase):
    name: str = "grounded-qa"
    method: Literal["grounded-qa"] = "grounded-qa"
    grounded_qa: GroundedQASection = GroundedQASection()


def run(ctx: stages.RunContext[GroundedQAConfig]) -> None:
    """Grounded QA, steps numbered as in the docstring."""
    sec = ctx.cfg.grounded_qa
    # step 1: chunk the documents
    chunks = chunk_documents(sec.documents, sec.chunk_chars, tuple(sec.patterns))[: sec.max_chunks]
    # step 2: the teacher writes question-answer pairs per chunk
    requests = [{"prompt": WRITE_PROMPT.format(source=c.path, n=sec.pairs_per_chunk, chunk=c.passage()), "chunk": asdict(c)}
                for c in chunks]
    written = stages.ask(ctx, "", "written", sec.teacher, requests, sec.write.params(), ctx.cfg.seed)
    # step 3: the cheap checks first (format, duplicates, support), then the judge on what is left
    candidates = stages.filter_rows(ctx, "", "candidates", [written], cheap_checks,
                                    {"pairs_per_chunk": sec.pairs_per_chunk, "min_support": sec.min_support})
    problems = [Problem(r["problem_id"], r["prompt"], "") for r in read_jsonl(candidates.path)]
    teacher = stages.external_model(sec.teacher.model, sec.teacher.model_dump())
    scores = stages.judge(ctx, "", teacher, problems, candidates, "grounded", sec.judge.samples, sec.judge.params(),
                          sampler=sec.teacher)
    # step 4: pairs the judge finds grounded, then none overlapping an evaluation set -> RUN/data.jsonl
    pairs = stages.filter_rows(ctx, "", "pairs", [candidates, scores], grounded_pairs,
                               {"keep_threshold": sec.judge.keep_threshold, "teacher": sec.teacher.model})
    stages.decontaminate(ctx, "", pairs, ("question", "answer"))


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


_Q = r"Q(?:uestion)?"
_A = r"A(?:nswer)?"
_LABEL = r"(?:^|\n)[\s\d.)*-]*(?:\*\*)?({q}|{a})\s*\d*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*"
"""A line's label: optional numbering or bullets, optional bold, `Q`/`Question` or `A`/`Answer`,
an optional number, a colon (ASCII or full-width), optional closing bold."""
LABELS = re.compile(_LABEL.format(q=_Q, a=_A))


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """Q/A pairs from the teacher's output: each question label followed by an answer label;
    the question runs to the answer's label, the answer to the next label or a blank line
    (numbering, bullets and bold markers allowed).

    >>> parse_pairs("1. Q: What is X?\\nA: A tool.\\n\\n**Q:** Who?\\n**A:** Ann")
    [('What is X?', 'A tool.'), ('Who?', 'Ann')]
    >>> parse_pairs("Question 2: How long?\\nAnswer 2: Four\\nminutes.\\nQ: No answer here?")
    [('How long?', 'Four minutes.')]
    """
    labels = list(LABELS.finditer(text))
    ends = [m.start() for m in labels[1:]] + [len(text)]
    pairs = []
    for i, (q, a) in enumerate(zip(labels, labels[1:])):
        if not (q.group(1).startswith("Q") and a.group(1).startswith("A")):
            continue
        question = " ".join(text[q.end():a.start()].split())
        answer = " ".join(re.split(r"\n\s*\n", text[a.end():ends[i + 1]], maxsplit=1)[0].split())
        if question and answer:
            pairs.append((question, answer))
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


def cheap_checks(written: list[dict[str, Any]], pairs_per_chunk: int, min_support: float) -> stages.Filtered:
    """Step 3's cheap checks over the teacher's raw output, in order: a pair parsed at all,
    format (a question ending in "?" and an answer), a duplicate question, support (the share
    of the answer's content words found in the chunk). What passes is written as one sample
    per pair for the judge: the passage and question its prompt, the answer its completion."""
    kept, rejected, counts = [], [], {"parsed": 0, "format": 0, "duplicate": 0, "support": 0}
    seen: set[str] = set()
    for w in written:
        if "completion" not in w:
            continue
        chunk = Chunk(**w["chunk"])
        pairs = parse_pairs(w["completion"])[:pairs_per_chunk]
        counts["parsed"] += len(pairs)
        if not pairs:
            rejected.append({"chunk_id": chunk.id, "question": None, "answer": None, "reason": "no Q/A pair in the output",
                             "raw": w["completion"][:500]})
        for q, a in pairs:
            reason = None
            if not q.endswith("?") or not a:
                reason = "format"
            elif q.lower() in seen:
                reason = "duplicate question"
            elif (supported := support(a, chunk.passage())) < min_support:
                reason = f"support {supported:.2f} < {min_support}"
            if reason:
                counts[reason.split(" ")[0]] += 1
                rejected.append({"chunk_id": chunk.id, "question": q, "answer": a, "reason": reason})
                continue
            seen.add(q.lower())
            kept.append({"problem_id": f"{chunk.id}/{len(kept)}", "index": 0, "prompt": f"Passage:\n{chunk.passage()}\n\nQuestion: {q}",
                         "completion": a, "question": q, "answer": a, "chunk": asdict(chunk)})
    return stages.Filtered(kept, rejected, {"parsed": counts.pop("parsed"), "filtered": {k: v for k, v in counts.items() if v}})


def grounded_pairs(candidates: list[dict[str, Any]], scores: list[dict[str, Any]], keep_threshold: float,
                   teacher: str) -> stages.Filtered:
    """Step 4: the pairs whose mean judge score reaches `keep_threshold`, as training rows."""
    rows, rejected = [], []
    for c, s in zip(candidates, scores):
        score = s["value"]
        if score is None or score < keep_threshold:
            why = "judge: no readable verdict" if score is None else f"judge: score {score:.2f} < {keep_threshold}"
            rejected.append({"chunk_id": c["chunk"]["id"], "question": c["question"], "answer": c["answer"], "reason": why})
            continue
        chunk = Chunk(**c["chunk"])
        rows.append({
            "question": c["question"], "answer": c["answer"], "chunk": chunk.passage(),
            "source": {"path": chunk.path, "chunk_id": chunk.id, "start": chunk.start, "end": chunk.end},
            "lineage": {"method": "grounded-qa", "iteration": 0, "model": teacher, "prompt_id": chunk.id, "score": score},
        })
    return stages.Filtered(rows, rejected)


# --- report ---------------------------------------------------------------------------


def collect(run: RunDir, cfg: GroundedQAConfig) -> dict[str, Any]:
    records = {n: run.record(n) for n in ("written", "candidates", "judge", "pairs")}
    info = {n: r.info if r else {} for n, r in records.items()}
    dropped = {**info["candidates"].get("filtered", {}), **({"judge": info["pairs"]["dropped"]} if info["pairs"].get("dropped") else {})}
    data = stages.training_data(run) or []
    return {
        "method": "grounded-qa", "name": cfg.name, "seed": cfg.seed, "teacher": cfg.grounded_qa.teacher.model,
        "chunks": info["written"].get("requests"), "parsed": info["candidates"].get("parsed"),
        "judged": info["judge"].get("judged"), "dropped": dropped, "rows": len(data),
        "seconds": {n: r.seconds for n, r in records.items() if r},
        "failed_requests": info["written"].get("failed", 0) + info["judge"].get("failed", 0),
        "examples": data[:8],
    }


def render(metrics: dict[str, Any]) -> str:
    rows = [("teacher (and judge)", metrics["teacher"]), ("chunks", metrics["chunks"]), ("pairs parsed", metrics["parsed"]),
            ("pairs judged", metrics["judged"]), ("pairs kept", metrics["rows"]),
            *[(f"dropped: {k}", v) for k, v in metrics["dropped"].items()],
            ("requests failed after every retry", metrics["failed_requests"])]
    examples = "".join(f"<li><b>{escape(e['question'])}</b> {escape(e['answer'])}<br><small>{escape(e['source']['chunk_id'])}, "
                       f"judge {e['lineage']['score']}</small></li>" for e in metrics["examples"])
    return page(f"selftrain: {escape(metrics['name'])}",
                f"<p>Grounded QA: pairs written per chunk and kept when the judge finds them answerable from the "
                f"chunk alone; every dropped pair is kept with its reason in the rejected rows of the candidates "
                f"and pairs filters, for review.</p>{kv_table(rows)}<h2>First rows of data.jsonl</h2><ol>{examples}</ol>")


def summary(metrics: dict[str, Any]) -> list[str]:
    return [f"pairs kept {metrics['rows']} of {metrics['parsed']} written, failed requests {metrics['failed_requests']}"]


METHOD = Method("grounded-qa", GroundedQAConfig, run, collect, render, summary,
                needs=lambda cfg: [("grounded_qa.teacher", cfg.grounded_qa.teacher, set())])
