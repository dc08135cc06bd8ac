"""``python -m controller`` runs the ``gitjob-webhook`` command."""

import sys

from controller.cli.main import main

sys.exit(main())
