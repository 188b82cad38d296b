"""The ``iotscope`` command: a thin shell over the library.

Each module here owns the commands of one stage (telescope, analysis, sensor, simulate, survey,
web, notify, share) and exposes ``register(app)``; commands only parse arguments, call library
functions and print. Bad input ends in a one-line message and exit code 2 (see :func:`fail`),
never a traceback.
"""

from __future__ import annotations

import typer

from iotscope.cli import (
    analysis_commands,
    notify_commands,
    report_commands,
    sensor_commands,
    share_commands,
    simulate_commands,
    survey_commands,
    telescope_commands,
    web_commands,
)
from iotscope.cli.common import fail
from iotscope.errors import IotscopeError

app = typer.Typer(
    name="iotscope",
    help="Observe darknet traffic, survey authorized space for default-password IoT devices, act.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for commands in (
    telescope_commands, analysis_commands, report_commands, sensor_commands, simulate_commands, survey_commands,
    web_commands, notify_commands, share_commands,
):
    commands.register(app)


def main() -> None:
    """Entry point of the console script.

    Commands catch :class:`IotscopeError` where they can say more; this is the last net, so that
    a user's mistake never ends in a traceback even where a command forgot to catch it.
    """
    try:
        app()
    except IotscopeError as exc:
        try:
            fail(str(exc))
        except typer.Exit as exit_:
            raise SystemExit(exit_.exit_code) from None


__all__ = ["app", "fail", "main"]
