"""Typed errors with the exit code the CLI returns for each kind.

Every error a user can meet says which file / field / value is wrong and what was expected.
"""

from __future__ import annotations


class MeitError(Exception):
    """Base class: anything meit raises on purpose."""

    exit_code = 1


class ConfigError(MeitError):
    """A recipe, override or command-line option is wrong."""

    exit_code = 2


class DataError(MeitError):
    """Input data (raw source, prepared dataset, record) is missing or malformed."""

    exit_code = 3


class ModelError(MeitError):
    """A backbone, encoder, checkpoint or artifact cannot be built or loaded."""

    exit_code = 4


class OfflineError(MeitError):
    """Something needs a download but the hub is unreachable or HF_HUB_OFFLINE is set."""

    exit_code = 5


class TrainingError(MeitError):
    """Training cannot continue (NaN loss, out of memory, broken checkpoint)."""

    exit_code = 6
