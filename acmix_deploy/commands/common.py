"""What every command shares: the option vocabulary, usage errors, argument checks and report output.

The vocabulary (documented in ``acmix-deploy --help`` and the README): ``--json`` prints the report
as JSON on stdout and nothing else there; ``--save-json PATH`` writes it to a file; ``--batch`` is
the batch size (a comma-separated list where a command runs several); ``--labels FILE`` names the
classes; ``-o/--output`` is a file written, ``-o/--output-dir`` a directory written into;
``--force`` replaces existing outputs; ``--backend`` overrides the file suffix's backend.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.pipeline import ExportOptionsError
from acmix_deploy.runtimes import BACKENDS


class UsageError(AcmixDeployError, ValueError):
    """A command was called wrongly (a value out of range, options that exclude each other): exit 2."""


EXIT_FAILURE, EXIT_USAGE = 1, 2
USAGE_ERRORS: tuple[type[Exception], ...] = (UsageError, ExportOptionsError)  # exit 2; other errors of ours exit 1

Backend = Literal[BACKENDS]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout, nothing else.")]
SaveJson = Annotated[Path | None, typer.Option("--save-json", help="Also write the report as JSON to this file.")]
Force = Annotated[bool, typer.Option("--force", help="Replace existing output files.")]
BackendOption = Annotated[Backend | None, typer.Option(help="Force a backend (default: from the file suffix).")]
ImgSize = Annotated[int | None, typer.Option(help="Input size of ACmix-ResNet checkpoints (default: recorded).")]
NoRewrite = Annotated[bool, typer.Option("--no-rewrite", help="Checkpoints run the reference model.")]
TrustPickle = Annotated[bool, typer.Option("--trust-pickle", help="Allow arbitrary unpickling (runs code).")]
Labels = Annotated[Path | None, typer.Option(help="Class names, one per line in output order.")]


def deprecated(old_value: Any, old: str, new: str, value: Any) -> Any:
    """``old_value`` when the deprecated spelling ``old`` was given (with a note on stderr), else ``value``."""
    if old_value is None:
        return value
    typer.echo(f"note: {old} is deprecated and goes in the next release; use {new}", err=True)
    return old_value


def require_files(paths: list[Path], directories: bool = False) -> None:
    """Fail (exit 1) on the first path that does not exist, before anything is loaded.

    Model artifacts are files, so a folder is refused in one line here rather than as a raw
    IsADirectoryError from whatever opens it; ``directories=True`` where a folder will do (image data).
    """
    for path in paths:
        if not path.exists():
            raise AcmixDeployError(f"{path}: no such file")
        if not directories and path.is_dir():
            raise AcmixDeployError(f"{path}: is a directory, expected a file")


MAX_BATCH_OPTION = 1 << 16  # batch sizes beyond this only ask the allocator for absurd amounts
MAX_IMG_SIZE_OPTION = 4096  # as manifests and checkpoint metadata


def ints(text: str, option: str, maximum: int = MAX_BATCH_OPTION) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``: integers in 1..``maximum``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} expects comma-separated integers, got {text!r}") from None
    if not values or any(not 1 <= v <= maximum for v in values):
        raise UsageError(f"{option} expects integers in 1..{maximum}, got {text!r}")
    return values


def at_least(minimum: float, **values: float | None) -> None:
    """Refuse (usage) a value below ``minimum``, NaN or infinite; the keywords are the option names, ``_`` for ``-``."""
    for name, value in values.items():
        if value is not None and (not math.isfinite(value) or value < minimum):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= {minimum}, got {value}")


def within(minimum: float, maximum: float, **values: float | None) -> None:
    """Refuse (usage) a value outside ``minimum..maximum`` (NaN and infinities included)."""
    for name, value in values.items():
        if value is not None and not minimum <= value <= maximum:  # False for NaN
            raise UsageError(f"--{name.replace('_', '-')} must be in {minimum}..{maximum}, got {value}")


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def check_writable(paths: list[Path | None], force: bool) -> None:
    from acmix_deploy.fileio import check_writable

    for path in paths:
        if path is not None:
            check_writable(path, force=force)


def show(payload: Any, text: str | None, json_out: bool, save_json: Path | None = None, force: bool = False) -> None:
    """Print ``payload`` as JSON (``--json``) or ``text``; write it to ``save_json`` too when given."""
    if json_out:
        print_json(payload)
    elif text is not None:
        typer.echo(text)
    if save_json is not None:
        from acmix_deploy.fileio import atomic_write_text

        atomic_write_text(save_json, json.dumps(payload, indent=2, default=str) + "\n", force=force)


def stage_printer(json_out: bool) -> Callable[[str, str], None]:
    """``progress(stage, message)`` printing ``[  1.2s] stage  message``; on stderr under ``--json``."""
    started = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:6.1f}s] {stage:<9} {message}", err=json_out)

    return progress
