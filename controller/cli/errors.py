"""What a command can fail with, and the exit status each means: mapped once, in :func:`main`."""

from __future__ import annotations


class CommandError(Exception):
    """A failure the user can act on: one line on stderr, then ``exit_status``; never a traceback."""

    exit_status = 1


class UsageError(CommandError):
    """A bad option, file or certificate: exit status 2."""

    exit_status = 2


class Failure(CommandError):
    """A runtime failure (API server unreachable, port in use): exit status 1."""

    exit_status = 1
