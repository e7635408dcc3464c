"""The ``looper`` command. ``serve`` and ``features apply`` run on the data directory's machine;
every other command is an operator's client of the services (through the Python client,
``looper``): use cases and blueprints, models and training, decisions and labels, access,
deletions.
Commands that later work adds (reports, experiments) register here the same way."""

from __future__ import annotations

import typer

from services.cli import credentials, deletions, models, records, report, serve, use_cases
from services.cli.connection import connection_options

app = typer.Typer(name="looper", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
app.callback()(connection_options)
for module in (serve, use_cases, models, records, report, credentials, deletions):
    module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns its exit code (0 ok, 1 a call failed, 2 usage)."""
    try:
        app(args=argv, prog_name="looper")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0
