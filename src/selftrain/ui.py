"""What a person sees while a run works: one line per stage, and while a stage runs, one
live progress bar per long step (rich) with counts and an ETA that vanishes when done.

Everything else (the trainers' losses, the libraries' warnings) goes to `RUN/logs/`;
`selftrain -v` shows it live as well. Nothing is set up at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_state: dict = {"console": None, "progress": None, "verbose": False}

LIBRARIES = ("transformers", "datasets", "accelerate", "trl", "torch", "httpx", "openai", "py.warnings", "peft")


def console():
    from rich.console import Console

    if _state["console"] is None:
        _state["console"] = Console(highlight=False, soft_wrap=True)
    return _state["console"]


def set_verbose(verbose: bool) -> None:
    _state["verbose"] = verbose


def verbose() -> bool:
    return _state["verbose"]


def say(text: str) -> None:
    """One line for the person at the terminal (and the run's log)."""
    from rich.text import Text

    logging.getLogger("selftrain").info(Text.from_markup(text).plain)
    if not verbose():  # with -v the log handler prints it
        console().print(text)


@contextmanager
def stage_view(name: str) -> Iterator[None]:
    """The live bars of one running stage; they vanish when it ends (its line stays)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if _state["progress"] is not None:  # a stage inside a stage shares the bars of the outer one
        yield
        return
    progress = Progress(TextColumn("  [bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console(), transient=True,
                        disable=not console().is_terminal)  # bars only on a terminal: a log file gets the lines
    _state["progress"] = progress
    try:
        with progress:
            yield
    finally:
        _state["progress"] = None


class Bar:
    """A progress bar of the running stage (a no-op outside one)."""

    def __init__(self, description: str, total: int | None, done: int = 0):
        self.progress = _state["progress"]
        self.task = self.progress.add_task(description, total=total, completed=done) if self.progress else None

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def close(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def run_logs(folder: Path) -> Iterator[None]:
    """Send selftrain's and the libraries' log records (warnings included) to
    `folder/run.log`; with verbose on, to the terminal as well. Progress bars of the
    libraries are turned off: the stage bars replace them."""
    import os
    import warnings

    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose() else logging.WARNING)
    logging.captureWarnings(True)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.disable_default_handler()
            hf_logging.enable_propagation()
        except ImportError:
            pass
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            handler.close()
            logging.captureWarnings(False)


def setup_terminal(verbose_: bool) -> None:
    """The CLI's logging: with `-v`, every record on the terminal too; else only selftrain's
    own lines, which `say` prints itself."""
    set_verbose(verbose_)
    if verbose_:
        from rich.logging import RichHandler

        logging.getLogger().addHandler(RichHandler(console=console(), show_path=False, level=logging.INFO))
