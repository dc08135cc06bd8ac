"""``python -m controller`` runs the ``gitjob-webhook`` command."""

import sys

from controller.cli import run

sys.exit(run())
