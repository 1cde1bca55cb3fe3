"""The error tree. Library code raises these; only the CLI turns them into one-line messages."""


class RepochatError(Exception):
    """Base of every error repochat reports to a user."""


class ConfigError(RepochatError):
    """A setting, flag or config file is invalid."""


class RepositoryError(RepochatError):
    """The path is not a readable repository or directory."""


class IndexStoreError(RepochatError):
    """The index is missing, corrupt or from an incompatible version."""


class IndexMissing(IndexStoreError):
    """No index has been built for this repository yet."""


class ModelError(RepochatError):
    """A model file is missing, corrupt, or cannot be loaded."""


class EngineError(RepochatError):
    """The inference engine failed while running."""


class ReviewError(RepochatError):
    """A review could not run (bad range, not a git repository, ...)."""

class EngineCrash(EngineError):
    """llama.cpp crashed natively (a signal) in a child process; the CLI exits 2 on it."""
