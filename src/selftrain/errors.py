"""The project's own errors, and how a config error reads. Third-party failures are wrapped
into these at the boundary, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SelftrainError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class ConfigError(SelftrainError):
    """A run config is invalid; the message names the field."""


class RunLockedError(SelftrainError):
    """Another process holds the run folder."""


class ModelLoadError(SelftrainError):
    """A model or tokenizer could not be loaded from a name or folder."""


class StageFailed(SelftrainError):
    """A stage made nothing a run can go on with (a verifier that judged nothing, an E-step
    that kept nothing after one that kept rows): the run stops, with the reasons counted,
    instead of training on nothing (`allow_empty_stages` goes on)."""


class TaskDataError(SelftrainError):
    """A task's data file is missing or malformed; the message names the file and line."""


def _section_at(model: Any, path: tuple) -> Any:
    """The section class at a dotted path of `model`'s fields (None when it is no section)."""
    import typing

    from pydantic import BaseModel

    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        todo, found = [field.annotation], None
        while todo and found is None:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found = t
            else:
                todo.extend(typing.get_args(t))
        if found is None:
            return None
        model = found
    return model


def format_validation_error(err: Any, source: str, root: Any = None, skip: int = 0) -> str:
    """One line per error, naming the field; an unknown field names the nearest known one
    (`root`: the config class, whose fields the locations after `skip` parts walk)."""
    import difflib

    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = tuple(e["loc"])[skip:]
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and root is not None and loc:
            section = _section_at(root, loc[:-1])
            known = list(section.model_fields) if section else []
            near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            message = f"unknown field{f'; did you mean {near[0]!r}?' if near else ''} (known here: {', '.join(known)})"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data
