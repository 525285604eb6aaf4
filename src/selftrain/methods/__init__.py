"""The method registry: each method is one module that declares a `Method`.

A `Method` names its run config (a `RunBase` subclass with `method: Literal[<name>]` and
the method's own section), its run function (the paper's algorithm box over the shared
stages), its report (collect the metrics from the run folder, render the page), its
terminal summary, and what it needs of its samplers (where fields of earlier layouts moved:
`methods.compat`). The CLI and the report look methods up here; adding a method is adding
a module and registering it (`register`, `unregister`), or listing it in `BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from selftrain.config import RunBase, SamplerConfig, format_validation_error, read_yaml
from selftrain.errors import ConfigError
from selftrain.methods.compat import moved_fields

DEFAULT_METHOD = "rest-em"

BUILTIN = {
    "rest-em": "selftrain.methods.rest_em",
    "self-rewarding": "selftrain.methods.self_rewarding",
    "self-instruct": "selftrain.methods.self_instruct",
    "grounded-qa": "selftrain.methods.grounded_qa",
    "distill": "selftrain.methods.distill",
}


@dataclass(frozen=True)
class Method:
    name: str
    config: type[RunBase]
    """Its run config: `method: Literal[name]` and its section."""
    run: Callable[[Any], None]
    """run(ctx: RunContext): the algorithm; the stages write everything into the run folder."""
    collect: Callable[[Any, Any], dict[str, Any]]
    """collect(run: RunDir, cfg) -> metrics.json, from the files the stages wrote."""
    render: Callable[[dict[str, Any]], str]
    """render(metrics) -> report.html."""
    summary: Callable[[dict[str, Any]], list[str]]
    """summary(metrics) -> the lines printed at the end of a run."""
    needs: Callable[[Any], list[tuple[str, SamplerConfig, set[str]]]] = lambda cfg: []
    """needs(cfg) -> (where, sampler settings, abilities) for each sampler the method uses."""
    demo: Callable[[int], RunBase] | None = None
    """demo(seed) -> the config `selftrain demo --method <name>` runs (offline, CPU)."""
    final_model: Callable[[Any], str | None] = lambda cfg: None
    """final_model(cfg) -> the group whose `model/` is the method's final model (None: it trains none)."""


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make a method available to configs (`method: <name>`), the CLI and the report."""
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Take a method out of the registry again (a test's toy method, say)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    if name not in _REGISTRY and name in BUILTIN:
        register(importlib.import_module(BUILTIN[name]).METHOD)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(sorted(set(BUILTIN) | set(_REGISTRY)))})")
    return _REGISTRY[name]


def all_methods() -> list[Method]:
    return [get_method(n) for n in sorted(set(BUILTIN) | set(_REGISTRY))]


def parse_config(data: dict[str, Any], source: str = "<dict>"):
    """The run config of the method `data` names (the demo's, ReST-EM, when none)."""
    method = get_method(data.get("method", DEFAULT_METHOD))
    moved = moved_fields(method.name, set(method.config.model_fields), data)
    if moved:
        raise ConfigError(f"{source} is written in the old config layout; these fields moved:\n  " + "\n  ".join(moved))
    union = Annotated[Union[tuple(m.config for m in all_methods())], Field(discriminator="method")]  # noqa: UP007
    try:
        cfg = TypeAdapter(union).validate_python({**data, "method": method.name})
    except ValidationError as err:
        message = format_validation_error(err, source, method.config, skip=1)
        raise ConfigError(message) from None
    from selftrain.samplers import check_needs

    for where, sampler, abilities in method.needs(cfg):
        check_needs(where, sampler, abilities)
    if hasattr(cfg, "task"):
        from selftrain.tasks import task_settings

        task_settings(cfg.task)  # a task of your own: known, and its settings valid
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None):
    """Read and validate a YAML run config; errors name the file and the field."""
    data = read_yaml(path)
    data.update(overrides or {})
    return parse_config(data, str(path))
