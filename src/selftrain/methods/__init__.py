"""The method registry: each method is one module that declares a `Method`.

A `Method` names its run config (a `RunBase` subclass with `method: Literal[<name>]` and
the method's own section), its run function (the paper's algorithm box over the shared
stages), its report (collect the metrics from the run folder, render the page), its
terminal summary, and what it needs of its samplers (where fields of earlier layouts moved:
`methods.compat`). The CLI and the report look methods up in `METHODS` (a
`selftrain.plugins.Registry`, like tasks, backends and verifiers): a built-in is a module
listed there; one of your own is registered (`register`), an entry point, or an import path
(`method: my_method.py:METHOD`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from selftrain.config import RunBase, SamplerConfig
from selftrain.errors import ConfigError, format_validation_error, read_yaml
from selftrain.methods.compat import moved_fields
from selftrain.plugins import Registry

DEFAULT_METHOD = "rest-em"

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
    plan: Callable[[Any, dict[str, int]], list[tuple[str, int, int]]] = lambda cfg, sizes: []
    """plan(cfg, split sizes) -> (stage, sequences sampled, most new tokens each): what `selftrain
    check` estimates the run's sampling from ([]: not estimated)."""


def _method(obj: Any, name: str) -> Method:
    if not isinstance(obj, Method):
        raise ConfigError(f"method: {name} is a {type(obj).__name__}, not a selftrain.methods.Method")
    return obj


METHODS: Registry[Method] = Registry("method", {
    "rest-em": "selftrain.methods.rest_em:METHOD",
    "self-rewarding": "selftrain.methods.self_rewarding:METHOD",
    "self-instruct": "selftrain.methods.self_instruct:METHOD",
    "grounded-qa": "selftrain.methods.grounded_qa:METHOD",
    "distill": "selftrain.methods.distill:METHOD",
    "own-problems": "selftrain.methods.own_problems:METHOD",
}, setting="method", check=_method)


def register(method: Method) -> Method:
    """Make a method available to configs (`method: <name>`), the CLI and the report."""
    return METHODS.register(method.name, method)


def unregister(name: str) -> None:
    """Take a method out of the registry again (a test's toy method, say)."""
    METHODS.unregister(name)


def get_method(name: str) -> Method:
    return METHODS.get(name)


def all_methods() -> list[Method]:
    return [get_method(n) for n in METHODS.names()]


def parse_config(data: dict[str, Any], source: str = "<dict>"):
    """The run config of the method `data` names (the demo's, ReST-EM, when none)."""
    method = get_method(data.get("method", DEFAULT_METHOD))
    moved = moved_fields(method.name, set(method.config.model_fields), data)
    if moved:
        raise ConfigError(f"{source} is written in the old config layout; these fields moved:\n  " + "\n  ".join(moved))
    configs = {m.config for m in all_methods()} | {method.config}
    union = Annotated[Union[tuple(configs)], Field(discriminator="method")]  # noqa: UP007
    try:
        cfg = TypeAdapter(union).validate_python({**data, "method": method.name})
    except ValidationError as err:
        message = format_validation_error(err, source, method.config, skip=1)
        raise ConfigError(message) from None
    from selftrain.samplers import check_needs, resolve_auto

    cfg = resolve_auto(cfg)  # `backend: auto`: vLLM when it is installed, else transformers
    for where, sampler, abilities in method.needs(cfg):
        check_needs(where, sampler, abilities)
    if hasattr(cfg, "task"):
        from selftrain.tasks import task_settings

        settings = task_settings(cfg.task)  # the task known, its settings valid; their defaults filled in
        if settings is not None:
            cfg = cfg.model_copy(update={"task": cfg.task.model_copy(update={"settings": settings.model_dump(mode="json")})})
    return cfg


def complete(cfg: RunBase) -> RunBase:
    """A config built in Python, checked as a config file is (`parse_config`): its task's
    settings with their defaults filled in, its samplers' abilities checked."""
    return parse_config(cfg.model_dump(mode="json"), f"<{type(cfg).__name__}>")


PATHS = ("train_path", "test_path", "seed_prompts", "seed_tasks", "documents", "config_file", "data")
"""Settings that are always local paths: relative ones are read from the config file's folder."""
MAYBE_PATHS = ("path", "name_or_path", "model")
"""Settings that are a local path or a hub name: from the config file's folder when there."""
CODE = ("verifier", "name", "backend")
"""Settings that may name code of your own by import path (`checks.py:fn`)."""


def from_folder(data: Any, folder: Path, key: str = "") -> Any:
    """`data` (a config's YAML) with its relative paths read from `folder` (the config file's):
    a path that is there becomes absolute; one that is not, but is under the working folder,
    is kept (configs written before paths were read from their folder); any other local path
    is read from `folder`, so that an error names where it was looked for.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "data.jsonl").write_text("{}")
    2
    >>> got = from_folder({"task": {"dataset": {"path": "data.jsonl", "verifier": "openai/gsm8k"}}}, d)
    >>> got["task"]["dataset"]["path"] == str(d / "data.jsonl"), got["task"]["dataset"]["verifier"]
    (True, 'openai/gsm8k')
    """
    if isinstance(data, dict):
        return {k: from_folder(v, folder, k) for k, v in data.items()}
    if isinstance(data, list):
        return [from_folder(v, folder, key) for v in data]
    if not isinstance(data, str) or not data or Path(data).is_absolute():
        return data
    if key in CODE:
        file, sep, attr = data.rpartition(":")
        if sep and file.endswith(".py") and not Path(file).is_absolute() and (folder / file).is_file():
            return f"{(folder / file).resolve()}:{attr}"
        return data
    if key not in PATHS + MAYBE_PATHS:
        return data
    there = folder / data
    if there.exists():
        return str(there.resolve())
    if Path(data).exists() or key not in PATHS:
        return data
    return str(there.resolve())


def load_config(path: str | Path, overrides: dict[str, Any] | None = None):
    """Read and validate a YAML run config; errors name the file and the field. Relative
    paths in it are read from the file's folder (`from_folder`); `overrides` as given."""
    data = from_folder(read_yaml(path), Path(path).resolve().parent)
    data.update(overrides or {})
    return parse_config(data, str(path))
