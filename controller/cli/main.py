"""``gitjob-webhook``: parse the command line, run one subcommand, map its failure to an exit status.

Every failure the user can fix ends with one line on stderr and exit status 2 (bad option, file
or certificate) or 1 (a runtime failure such as a port in use or an API server that fails).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from controller import logs, settings as settings_module
from controller.cli.errors import CommandError
from controller.cli.parser import build_parser
from controller.settings import SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand (reached through :func:`controller.cli.run`)."""
    try:
        arguments = vars(build_parser().parse_args(argv))
        if arguments["command"] != "serve" and arguments.get("log_format") is None \
                and settings_module.env_name("log_format") not in os.environ:
            arguments["log_format"] = "text"   # a person reads a command's warnings; a collector, a server's
        settings = settings_module.build(arguments)
        logs.configure(settings.log_format, settings.log_level)
        # Each command's module is imported only when it runs: `serve` need not load the client.
        if arguments["command"] == "certs":
            from controller.cli import certs
            return certs.run(arguments, settings)
        if arguments["command"] == "explain":
            from controller.cli import explain
            return explain.run(arguments, settings)
        if arguments["command"] == "status":
            from controller.cli import status
            return status.run(arguments, settings)
        if arguments["command"] == "trigger":
            from controller.cli import trigger
            return trigger.run(arguments, settings)
        if arguments["command"] == "secret":
            from controller.cli import secret
            return secret.run(arguments, settings)
        from controller.cli import serve
        return serve.run(arguments["listener"], settings)
    except SettingsError as error:
        return _fail(2, str(error))
    except CommandError as error:
        return _fail(error.exit_status, str(error))
    except BrokenPipeError:
        # The reader went away (`explain … | head`): stop quietly, as other command-line tools do,
        # and let nothing write to the closed pipe again on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _fail(status: int, message: str) -> int:
    print(f"gitjob-webhook: error: {message}", file=sys.stderr)
    return status
