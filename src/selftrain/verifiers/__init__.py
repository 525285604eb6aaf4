"""Verifiers by name, from one registry (`VERIFIERS`): the built-ins (`math`, `exact`, `code`;
each module declares its `KIND`), those registered in this process (`register`), an
installed package's `selftrain.verifiers` entry points, and a function of your own by
import path (TRL's reward signature: `selftrain.verifiers.function`)."""

from __future__ import annotations

from typing import Any

from selftrain.errors import ConfigError
from selftrain.plugins import Registry
from selftrain.verifiers.base import Verifier, VerifierKind


def _kind(obj: Any, name: str) -> VerifierKind:
    if isinstance(obj, VerifierKind):
        return obj
    if callable(obj) and not isinstance(obj, type):  # a function of your own, TRL's reward signature
        from selftrain.verifiers.function import FunctionVerifier

        return VerifierKind(name, lambda cfg: FunctionVerifier(name, threshold=getattr(cfg, "threshold", 0.5),
                                                                timeout=cfg.timeout, setting="verifier"))
    raise ConfigError(f"verifier {name}: a {type(obj).__name__}, neither a selftrain.verifiers.VerifierKind nor a function")


VERIFIERS: Registry[VerifierKind] = Registry("verifier", {
    "math": "selftrain.verifiers.math:KIND",
    "exact": "selftrain.verifiers.exact:KIND",
    "code": "selftrain.verifiers.code:KIND",
}, setting="verifier", check=_kind)


def register(kind: VerifierKind) -> VerifierKind:
    """Make a verifier available by `kind.name` in tasks' settings (`verifier: <name>`)."""
    return VERIFIERS.register(kind.name, kind)


def _function(name: str, setting: str) -> bool:
    """Whether `name` is the import path of a function of your own (not a VerifierKind)."""
    from selftrain.plugins import is_import_path, load_object

    return is_import_path(name) and name not in VERIFIERS.names() and not isinstance(load_object(name, setting), VerifierKind)


def check_verifier(name: str, setting: str, fields: set[str]) -> None:
    """Refuse, naming `setting`, a verifier that is unknown, cannot be loaded, or reads a
    problem field the task does not map (`fields`: answer, tests)."""
    from selftrain.plugins import check_reward_function

    if not VERIFIERS.known(name):
        raise ConfigError(f"{setting}: {name!r} is none of {', '.join(VERIFIERS.names())} and not the import path of a "
                          "function of your own (`my_checks:name` or `path/to/checks.py:name`)")
    if _function(name, setting):
        check_reward_function(name, setting)
        return
    missing = sorted(VERIFIERS.get(name, setting).needs - fields)
    if missing:
        raise ConfigError(f"{setting}: verifier {name!r} needs the {' and '.join(missing)} field"
                          f"{'s' if len(missing) > 1 else ''} (columns)")


def build_verifier(name: str, settings: Any, setting: str = "verifier") -> Verifier:
    """The verifier `name` stands for, built from a task's `settings` (timeout, units, marker,
    threshold); a function of your own runs in a worker process (`FunctionVerifier`)."""
    if _function(name, setting):
        from selftrain.verifiers.function import FunctionVerifier

        return FunctionVerifier(name, threshold=getattr(settings, "threshold", 0.5), timeout=settings.timeout,
                                batch_size=getattr(settings, "verifier_batch_size", 64), setting=setting)
    return VERIFIERS.get(name, setting).make(settings)


__all__ = ["Verifier", "VerifierKind", "VERIFIERS", "register", "check_verifier", "build_verifier"]
