"""The Python API: run a method from a config file, a mapping or a config object, and get
back what it made. `selftrain.run` is the CLI's `selftrain run` as a function; the config
classes are the same typed sections the YAML files fill in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from selftrain.config import RunBase, read_yaml
from selftrain.errors import SelftrainError


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
