"""Code of your own, named by import path: `"my_checks:sql_matches"` (a module importable from
the working folder or the installed packages) or `"path/to/checks.py:sql_matches"` (a file).

`load_object` imports it and says, naming the setting, what is wrong when it cannot;
`source_hash` stands for its code in fingerprints (the whole file: a helper it calls counts).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from selftrain.errors import ConfigError


def is_import_path(text: str) -> bool:
    """Whether a setting names code (`module:attr` or `file.py:attr`) rather than a built-in.

    >>> is_import_path("math"), is_import_path("checks.py:sorted_right"), is_import_path("my.checks:f")
    (False, True, True)
    """
    module, sep, attr = text.rpartition(":")
    return bool(sep and module and attr.isidentifier())


def _module(module: str, setting: str):
    if module.endswith(".py"):
        path = Path(module).resolve()
        if not path.is_file():
            raise ConfigError(f"{setting}: no file {module} (from {Path.cwd()})")
        name = f"selftrain_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as err:
            del sys.modules[name]
            raise ConfigError(f"{setting}: importing {module} failed: {type(err).__name__}: {err}") from None
        return mod
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a module beside the config, as `python -m` would find it
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigError(f"{setting}: cannot import {module!r} ({err}); give `package.module:name`, importable from "
                          f"{Path.cwd()}, or `path/to/file.py:name`") from None
    except Exception as err:
        raise ConfigError(f"{setting}: importing {module} failed: {type(err).__name__}: {err}") from None


def load_object(target: str, setting: str) -> Any:
    """The object `target` names (`module:attr` or `file.py:attr`); a ConfigError naming
    `setting` when it cannot be had."""
    if not is_import_path(target):
        raise ConfigError(f"{setting}: {target!r} is not an import path (`module:name` or `path/to/file.py:name`)")
    module, _, attr = target.rpartition(":")
    mod = _module(module, setting)
    if not hasattr(mod, attr):
        found = sorted(n for n in vars(mod) if not n.startswith("_") and callable(getattr(mod, n)))
        raise ConfigError(f"{setting}: {module} has no {attr!r} (it has: {', '.join(found) or 'nothing callable'})")
    return getattr(mod, attr)


def source_hash(obj: Any) -> str:
    """A hash of the file that defines `obj` (or of its own source, when it has no file)."""
    try:
        path = inspect.getsourcefile(obj)
        text = Path(path).read_bytes() if path else inspect.getsource(obj).encode()
    except (OSError, TypeError):
        text = repr(obj).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def check_reward_function(target: str, setting: str) -> None:
    """Refuse, naming `setting`, a verifier of your own that cannot be imported or given a
    batch: TRL's reward signature, `fn(prompts, completions, **columns)`: two positional
    arguments, and the columns as keywords (`**kwargs`, or the names of the ones it uses)."""
    fn = load_object(target, setting)
    if not callable(fn):
        raise ConfigError(f"{setting}: {target} is a {type(fn).__name__}, not a function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin: called as it is
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ConfigError(f"{setting}: {target}{sig} must take (prompts, completions, **columns), TRL's reward signature")
