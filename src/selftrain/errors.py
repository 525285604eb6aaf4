"""The project's own errors. Third-party failures are wrapped into these at the boundary,
with a message that says what to do."""


class SelftrainError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class ConfigError(SelftrainError):
    """A run config is invalid; the message names the field."""


class RunLockedError(SelftrainError):
    """Another process holds the run folder."""


class ModelLoadError(SelftrainError):
    """A model or tokenizer could not be loaded from a name or folder."""


class TaskDataError(SelftrainError):
    """A task's data file is missing or malformed; the message names the file and line."""
