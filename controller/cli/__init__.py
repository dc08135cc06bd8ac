"""The ``gitjob-webhook`` command: the parser, one module per subcommand, and the exit statuses."""

from __future__ import annotations


def run() -> int:
    """The entry point of the console scripts and of ``python -m controller``: :func:`main`, and a
    Ctrl-C, whether the command is still loading or running, exits 130 without a traceback."""
    try:
        from controller.cli.main import main
        return main()
    except KeyboardInterrupt:
        return 130
