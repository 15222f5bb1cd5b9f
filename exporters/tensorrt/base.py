"""What every stage of the TensorRT build shares: its error type, the precisions, the progress callback."""

from __future__ import annotations

from collections.abc import Callable

from acmix_deploy.errors import AcmixDeployError

PRECISIONS = ("fp32", "fp16", "int8")

#: ``callback(stage, message)``, called as each stage starts or finishes; ``print`` works.
Progress = Callable[[str, str], None]


class BuildError(AcmixDeployError):
    """The engine could not be built (bad arguments, unsupported graph, parser or builder failure)."""


def no_progress(stage: str, message: str) -> None:
    """The default :data:`Progress`: say nothing."""


__all__ = ["PRECISIONS", "BuildError", "Progress", "no_progress"]
