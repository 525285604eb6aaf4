"""The `selftrain` command: each subcommand is a few lines over a library call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from selftrain.errors import SelftrainError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Self-training for language models.")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "datasets", "accelerate", "httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(cfg, out: Optional[Path]) -> None:
    if cfg.method == "self-rewarding":
        from selftrain.methods.self_rewarding import run_self_rewarding as run_method
    elif cfg.method == "self-instruct":
        from selftrain.methods.self_instruct import run_self_instruct as run_method
    elif cfg.method == "grounded-qa":
        from selftrain.methods.grounded_qa import run_grounded_qa as run_method
    elif cfg.method == "distill":
        from selftrain.methods.distill import run_distill as run_method
    else:
        from selftrain.methods.rest_em import run_rest_em as run_method

    out = out or Path("runs") / f"{cfg.name}-seed{cfg.seed}"
    try:
        metrics = run_method(cfg, out)
    except SelftrainError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    _print_summary(metrics)
    typer.echo(f"report: {Path(out) / 'report.html'}")


def _print_summary(metrics: dict) -> None:
    if metrics.get("method") == "distill":
        for r in metrics["rows"]:
            typer.echo(f"{r['label']:<34} accuracy {r['test']['accuracy'] * 100:5.1f}%")
        return
    if metrics.get("method") == "grounded-qa":
        typer.echo(f"pairs kept {metrics['rows']} of {metrics['judge'].get('rejected', {}).get('parsed')} written, "
                   f"failed requests {metrics['failed_requests']}")
        return
    if metrics.get("method") == "self-instruct":
        typer.echo(f"instructions kept {metrics['instructions'].get('kept')}, rows {metrics['rows']}, "
                   f"failed requests {metrics['failed_requests']}")
        return
    if metrics.get("method") == "self-rewarding" and metrics.get("chat"):
        for r in metrics["rows"]:
            typer.echo(f"{r['label']:<4} self-judged {r.get('self_judged')}  M1-judged {r.get('m1_judged')}  vs M1 {r.get('vs_m1')}")
        return
    if metrics.get("method") == "self-rewarding":
        for r in metrics["rows"]:
            typer.echo(f"{r['label']:<4} answer accuracy {r['test']['accuracy'] * 100:5.1f}%   "
                       f"judge pairwise accuracy {r['judge_accuracy'] * 100:5.1f}%")
        return
    for r in metrics["rows"]:
        t = r["test"]
        typer.echo(f"{r['label']:<40} accuracy {t['accuracy'] * 100:5.1f}%  " + "  ".join(
            f"{b}:{v * 100:5.1f}" for b, v in t["by_bucket"].items()
        ))


@app.command()
def demo(
    out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<name>-seed<SEED>)."),
    seed: int = typer.Option(0, help="Seed of model init, sampling and training order."),
    method: str = typer.Option("rest-em", help="rest-em, or self-rewarding (the miniature)."),
) -> None:
    """ReST-EM (or Self-Rewarding) on the embedded arithmetic task with a tiny model built
    locally (offline, CPU)."""
    from selftrain.config import RunConfig

    _setup_logging()
    if method == "self-rewarding":
        from selftrain.methods.self_rewarding import demo_config

        cfg = demo_config(seed)
    elif method == "rest-em":
        cfg = RunConfig(seed=seed)
    else:
        typer.secho(f"error: unknown method {method!r} (rest-em, self-rewarding)", fg="red", err=True)
        raise typer.Exit(2)
    _run(cfg, out)


@app.command()
def run(
    config: Path = typer.Argument(..., help="A run config (YAML), e.g. configs/arithmetic-rest-em.yaml."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<name>-seed<SEED>)."),
    seed: Optional[int] = typer.Option(None, help="Override the config's seed."),
) -> None:
    """Run, or resume, the method a config file describes."""
    from selftrain.config import load_config

    _setup_logging()
    try:
        cfg = load_config(config, {"seed": seed} if seed is not None else None)
    except SelftrainError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    _run(cfg, out)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Rebuild RUN/metrics.json and RUN/report.html from the files of a run."""
    from selftrain.report import write_report

    try:
        page = write_report(run_dir)
    except SelftrainError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(page))


if __name__ == "__main__":
    app()


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
    from selftrain.errors import ModelLoadError
    from selftrain.models import set_torch_threads
    from selftrain.samplers.hf import HFSampler
    from selftrain.serve import ModelServer

    _setup_logging()
    set_torch_threads(threads)
    try:
        sampler = HFSampler(model, batch_size=batch_size)
    except ModelLoadError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    server = ModelServer(sampler, model_name=name or Path(model).stem, host=host, port=port, batch_size=batch_size)
    typer.echo(f"serving {model} at {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@app.command()
def export(
    model: str = typer.Argument(..., help="A model folder, a Hugging Face name, or a .gguf file."),
    out: Path = typer.Argument(..., help="The folder to write."),
) -> None:
    """Save a model and its tokenizer as a plain Hugging Face folder (a .gguf file is
    de-quantized once, so later loads take a second instead of tens)."""
    from selftrain.errors import ModelLoadError
    from selftrain.models import load_model, load_tokenizer

    _setup_logging()
    try:
        tokenizer, loaded = load_tokenizer(model), load_model(model)
    except ModelLoadError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    loaded.save_pretrained(out)
    tokenizer.save_pretrained(out)
    typer.echo(f"saved {sum(p.numel() for p in loaded.parameters()):,} parameters to {out}")
