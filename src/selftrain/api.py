"""The Python API: run a method from a config file, a mapping or a config object, and get
back what it made. `selftrain.run` is the CLI's `selftrain run` as a function; the config
classes are the same typed sections the YAML files fill in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from selftrain.config import RunBase
from selftrain.errors import SelftrainError, read_yaml


@dataclass(frozen=True)
class Run:
    """A run folder and what is in it."""

    folder: Path
    config: RunBase

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """`metrics.json`: what the report shows (rebuilt by `selftrain report`)."""
        from selftrain.artifacts import read_json

        return read_json(self.folder / "metrics.json")

    @property
    def report(self) -> Path:
        return self.folder / "report.html"

    @property
    def model(self) -> Path | None:
        """The folder of the method's final model (a plain Hugging Face folder), or None for
        a method that trains none (Self-Instruct, grounded QA)."""
        from selftrain.methods import get_method

        group = get_method(self.config.method).final_model(self.config)
        return None if group is None else self.folder / group / "model"

    @property
    def data(self) -> list[Path]:
        """Every `data.jsonl` the run wrote (the training data of each step, decontaminated,
        each with its dataset card beside it)."""
        return sorted(self.folder.rglob("data.jsonl"))


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if "." in key:
            head, _, rest = key.partition(".")
            value, key = {rest: value}, head
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config(source: str | Path | dict[str, Any] | RunBase, **overrides: Any) -> RunBase:
    """A validated run config from a YAML file, a mapping or a config object, with
    `overrides` merged in: `seed=1`, `rest_em={"iterations": 2}` (merged into the section) or,
    passed as `**{"rest_em.iterations": 2}`, a dotted field.

    >>> config({"method": "rest-em"}, **{"rest_em.iterations": 5}).rest_em.iterations
    5
    """
    from selftrain.methods import parse_config

    if isinstance(source, RunBase):
        data, where = yaml.safe_load(source.to_yaml()), f"{type(source).__name__}"
    elif isinstance(source, dict):
        data, where = source, "<dict>"
    else:
        data, where = read_yaml(source), str(source)
    return parse_config(_deep_merge(data, overrides), where)


def run(source: str | Path | dict[str, Any] | RunBase, out: str | Path | None = None, **overrides: Any) -> Run:
    """Run (or resume) the method a config describes in the folder `out` (default
    `runs/<name>-seed<seed>`), as `selftrain run` does; returns the `Run`."""
    from selftrain.runs import default_out, run_method

    cfg = config(source, **overrides)
    folder = Path(out) if out is not None else default_out(cfg)
    run_method(cfg, folder)
    return Run(folder, cfg)


def load_run(folder: str | Path) -> Run:
    """A finished (or running) run's folder, as a `Run`."""
    from selftrain.methods import parse_config

    folder = Path(folder)
    if not (folder / "config.yaml").is_file():
        raise SelftrainError(f"{folder} is not a run folder (no config.yaml)")
    return Run(folder, parse_config(read_yaml(folder / "config.yaml"), str(folder / "config.yaml")))


def settings_reference() -> str:
    """Every setting of every run config, as Markdown: its dotted name, type, default and the
    first sentence of its documentation, from the config classes themselves (docs/config.md
    is this text; a test keeps the two equal; `selftrain settings` prints it). The sections
    methods share (training, sampling, a sampler) are listed once, at the end."""
    import re

    from pydantic import BaseModel

    import selftrain.config as shared
    from selftrain.config import RunBase, TaskRun
    from selftrain.methods import all_methods
    from selftrain.tasks import TASKS

    common = {c for c in vars(shared).values() if isinstance(c, type) and issubclass(c, BaseModel)
              and c.__module__ == shared.__name__ and c not in (RunBase, TaskRun, shared.TaskConfig)}

    def kind(annotation: Any) -> str:
        text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        return re.sub(r"\b(typing|selftrain\.[\w.]+)\.", "", text).replace("NoneType", "None").replace("|", "\\|")

    def first(doc: str | None) -> str:
        text = " ".join((doc or "").split())
        m = re.search(r"(?<!e\.g)(?<!i\.e)(?<!etc)(?<! al)\.\s", text)
        return (text if m is None else text[:m.start() + 1]).replace("|", "\\|")

    def rows(model: type[BaseModel], prefix: str, only: tuple[str, ...] | None = None) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            if only is not None and name not in only:
                continue
            sections = _section_types(field.annotation)
            value = field.get_default(call_default_factory=True)
            default = "(section)" if isinstance(value, BaseModel) else "required" if field.is_required() else f"`{value!r}`"
            inherited = (getattr(base, "model_fields", {}).get(name) for base in model.__mro__[1:])
            doc = field.description or next((f.description for f in inherited if f is not None and f.description), None)
            what = first(doc) or (first(sections[0].__doc__) if sections else "")
            shared_type = sections and sections[0] in common
            note = f" (`{sections[0].__name__}`, below)" if shared_type else ""
            out.append(f"| `{prefix}{name}` | {kind(field.annotation)} | {default} | {what}{note} |")
            if sections and not shared_type:
                out += rows(sections[0], f"{prefix}{name}.")
        return out

    head = "| setting | type | default | what |\n|---|---|---|---|\n"
    parts = ["# Settings\n\nEvery setting of a run config, generated from the config classes (`selftrain settings` prints "
             "this page; `tests/test_docs.py` keeps it current). A section given in part keeps the defaults of the fields "
             "it leaves out. Relative paths in a config file are read from the file's folder.",
             "## Every run\n\n" + head + "\n".join(rows(RunBase, "", only=tuple(n for n in RunBase.model_fields if n != "method"))),
             "## A run on a task (every method but self-instruct and grounded-qa)\n\n" + head
             + "\n".join(rows(TaskRun, "", only=tuple(n for n in TaskRun.model_fields if n not in RunBase.model_fields)))]
    for name in sorted(TASKS.builtin):
        cls = TASKS.get(name)
        parts.append(f"## Task `{name}` (`task.{name}`)\n\n{first(cls.__doc__ or cls.config.__doc__)}\n\n" + head + "\n".join(rows(cls.config, f"task.{name}.")))
    for method in all_methods():
        own = tuple(n for n in method.config.model_fields if n not in TaskRun.model_fields)
        parts.append(f"## Method `{method.name}`\n\n" + head + "\n".join(rows(method.config, "", only=own)))
    for cls in sorted(common, key=lambda c: c.__name__):
        parts.append(f"## `{cls.__name__}`\n\n{first(cls.__doc__)}\n\n" + head + "\n".join(rows(cls, "")))
    return "\n\n".join(parts) + "\n"


def _section_types(annotation: Any) -> list[type]:
    """The config section classes an annotation holds (`X`, `X | None`)."""
    import typing

    from pydantic import BaseModel

    todo, found = [annotation], []
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            found.append(t)
        else:
            todo.extend(typing.get_args(t))
    return found
