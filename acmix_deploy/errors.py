"""Typed errors. The CLI turns any of these into one line on stderr and a non-zero exit."""

from __future__ import annotations


class AcmixDeployError(Exception):
    """Base of every error this package raises on purpose (bad input, failed validation)."""


class CheckpointError(AcmixDeployError):
    """A checkpoint could not be read, recognised or matched to a model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle references code we refuse to run without an explicit opt-in."""


class InputSizeError(AcmixDeployError, ValueError):
    """A model cannot run at the input size asked for (its family's rule says why)."""
