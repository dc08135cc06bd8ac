"""``python -m controller`` runs the ``gitjob-webhook`` command."""

import sys

from controller.cli import main

sys.exit(main())
