"""The commands of ``acmix-deploy``, one module per theme; ``cli.py`` registers them on the Typer app.

Each command parses its options, makes one library call and prints the result (:mod:`.common`
holds the vocabulary every command shares). Modules import only typer and light constants at
import time, so ``acmix-deploy --help`` loads no heavy package.
"""

from . import checkpoints, export, measure, precision, run, serve

# Help lists the commands in this order.
COMMANDS = (
    checkpoints.models,
    checkpoints.inspect,
    checkpoints.init,
    export.export,
    export.convert,
    run.predict,
    run.verify,
    measure.benchmark,
    measure.profile,
    precision.sensitivity,
    export.triton,
    export.build,
    run.evaluate,
    serve.serve,
)

__all__ = ["COMMANDS"]
