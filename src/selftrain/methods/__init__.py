"""The method registry: each method is one module that declares a `Method`.

A `Method` names its run config (a `RunBase` subclass with `method: Literal[<name>]` and
the method's own section), its run function (the paper's algorithm box over the shared
stages), its report (collect the metrics from the run folder, render the page), its
terminal summary, what it needs of its samplers, and where fields of the old one-config-
for-all layout moved. The CLI and the report look methods up here; adding a method is
adding a module and registering it (`register`), or listing it in `BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from selftrain.config import RunBase, SamplerConfig, format_validation_error, read_yaml
from selftrain.errors import ConfigError

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
    moved: dict[str, str] = field(default_factory=dict)
    """Old config field (dotted prefix) -> its new place, for a clear error on old configs
    (old sections the method's config lacks are reported as removed without being listed)."""
    demo: Callable[[int], RunBase] | None = None
    """demo(seed) -> the config `selftrain demo --method <name>` runs (offline, CPU)."""


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Make a method available to configs (`method: <name>`), the CLI and the report."""
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in _REGISTRY and name in BUILTIN:
        register(importlib.import_module(BUILTIN[name]).METHOD)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(sorted(set(BUILTIN) | set(_REGISTRY)))})")
    return _REGISTRY[name]


def all_methods() -> list[Method]:
    return [get_method(n) for n in sorted(set(BUILTIN) | set(_REGISTRY))]


def _leaves(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict) or not data:
        return [prefix]
    return [leaf for k, v in data.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]


OLD_SECTIONS = ("sampling", "select", "sft", "train", "teacher", "task", "model", "eval", "rest_em", "self_rewarding",
                "distill", "self_instruct", "grounded_qa")
"""The top-level sections of the one-config-for-all layout before per-method configs."""


def moved_fields(method: Method, data: dict[str, Any]) -> list[str]:
    """'old -> new' for each field of `data` written in the old layout: moved as the method
    says, or removed (an old section the method's config does not have)."""
    removed = {k: "" for k in OLD_SECTIONS if k not in method.config.model_fields}
    moves = {**removed, **method.moved}
    out = []
    for leaf in _leaves(data):
        matches = [old for old in moves if leaf == old or leaf.startswith(old + ".")]
        if matches:
            old = max(matches, key=len)
            new = moves[old]
            out.append(f"{leaf} -> {new + leaf[len(old):] if new else '(removed: ' + method.name + ' does not use it)'}")
    return out


def parse_config(data: dict[str, Any], source: str = "<dict>"):
    """The run config of the method `data` names (the demo's, ReST-EM, when none)."""
    method = get_method(data.get("method", DEFAULT_METHOD))
    moved = moved_fields(method, data)
    if moved:
        raise ConfigError(f"{source} is written in the old config layout; these fields moved:\n  " + "\n  ".join(moved))
    union = Annotated[Union[tuple(m.config for m in all_methods())], Field(discriminator="method")]  # noqa: UP007
    try:
        cfg = TypeAdapter(union).validate_python({**data, "method": method.name})
    except ValidationError as err:
        message = format_validation_error(err, source).replace(f"  {method.name}.", "  ").replace(f"  {method.name}: ", "  ")
        raise ConfigError(message) from None
    from selftrain.samplers import check_needs

    for where, sampler, abilities in method.needs(cfg):
        check_needs(where, sampler, abilities)
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None):
    """Read and validate a YAML run config; errors name the file and the field."""
    data = read_yaml(path)
    data.update(overrides or {})
    return parse_config(data, str(path))
