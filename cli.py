"""The ``acmix-deploy`` command line: the Typer app, its commands, and the one map from errors to exit codes.

The commands live in :mod:`acmix_deploy.commands` (one module per theme, each command parsing
options, making one library call and printing); this module registers them and runs them.

Vocabulary, the same in every command:

- ``--json``: print the command's report as JSON on stdout and nothing else there (progress and
  notes go to stderr). ``--save-json PATH``: write that JSON to a file as well (``evaluate``,
  ``benchmark``, ``profile``); their old file-writing spelling ``--json FILE.json`` still works
  for one release, with a deprecation note on stderr.
- ``--batch``: the batch size, a comma-separated list where a command runs several (``benchmark``);
  ``--min-batch`` / ``--opt-batch`` / ``--max-batch``: the batch limits an artifact promises.
- ``--labels FILE``: class names, one per line in output order. ``-o/--output``: the file written;
  ``-o/--output-dir``: the directory written into. ``--force``: replace existing outputs (never
  replaced without it). ``--backend``: force a backend instead of the file suffix's.

Renamed, the old spelling kept (hidden, with a note on stderr) for one release: ``evaluate
--batch-size`` -> ``--batch``, ``evaluate --classes`` -> ``--labels``, ``verify --rtol`` ->
``--max-diff`` (a bound on max|diff| in units of max(1, max|reference|), not a relative
tolerance), ``triton --output`` -> ``--output-dir``.

Errors: our own errors print one ``error:`` line; bad usage exits 2, a failure 1 (:func:`main` is
the one place that maps error types to those codes). ``--debug`` shows tracebacks. Heavy packages
(torch, onnx, onnxruntime) are imported inside the commands that use them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from acmix_deploy.commands import COMMANDS
from acmix_deploy.commands.common import EXIT_FAILURE, EXIT_USAGE, USAGE_ERRORS
from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.text import safe_text

app = typer.Typer(
    name="acmix-deploy",
    help="Ship ACmix checkpoints: rewrite, export to ONNX/TensorRT, run and benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=(
        "Every command speaks one vocabulary: --json prints the report as JSON on stdout and nothing else, "
        "--save-json FILE writes it; --batch is the batch size (a list in benchmark); --labels FILE names the "
        "classes; -o/--output is a file written, -o/--output-dir a directory; --force replaces outputs. "
        "Exit codes: 1 failure, 2 bad usage."
    ),
)
_state = {"debug": False}


def _hide_flag_types() -> None:
    """Typer (0.29) prints ``<bool>`` after every flag in help; a flag takes no value, so show nothing there.

    Only help rendering changes; a Typer without this hook keeps its own rendering (tested in test_cli).
    """
    from typer import core

    shown = getattr(getattr(core, "TyperOption", None), "display_type_rich", None)
    if shown is not None:
        core.TyperOption.display_type_rich = lambda self, ctx: (
            None if getattr(self, "is_bool_flag", False) else shown(self, ctx)
        )


_hide_flag_types()


def _version(value: bool) -> None:
    if value:
        from acmix_deploy import __version__

        typer.echo(f"acmix-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


for _command in COMMANDS:
    app.command()(_command)


SAVE_JSON_COMMANDS = ("evaluate", "benchmark", "profile")  # where `--json FILE` used to write a file


def modern_argv(argv: list[str]) -> list[str]:
    """Rewrite the deprecated ``--json FILE.json`` of evaluate/benchmark/profile as ``--save-json FILE.json``.

    Only a value ending in ``.json`` is taken for the old spelling, so ``--json`` before an artifact
    stays the print-JSON flag.
    """
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SAVE_JSON_COMMANDS:
        return argv
    out, rest = [], iter(argv)
    for arg in rest:
        value = arg.partition("=")[2] if arg.startswith("--json=") else None
        if arg == "--json":
            following = next(rest, None)
            if following is not None and following.endswith(".json") and not following.startswith("-"):
                value = following
            else:
                out.append(arg)
                arg = following
        if value is not None:
            typer.echo("note: --json FILE is deprecated and goes in the next release; use --save-json FILE", err=True)
            out += ["--save-json", value]
        elif arg is not None:
            out.append(arg)
    return out


def main() -> None:
    """Console-script entry point: run the app; the one place mapping errors to exit codes and one-line messages."""
    try:
        code = app(args=modern_argv(sys.argv[1:]), standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except AcmixDeployError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {safe_text(exc)}", err=True)  # messages quote file names and artifact strings
        sys.exit(EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Typer's usage errors (click-style exceptions, vendored) know how to print themselves and their code (2).
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(EXIT_FAILURE)
        if _state["debug"]:
            raise
        typer.echo(f"error: {type(exc).__name__}: {safe_text(exc)} (run with --debug for the traceback)", err=True)
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
