"""``python -m controller`` runs the ``gitjob-webhook`` command."""

import sys

try:
    from controller.cli.main import main
    sys.exit(main())
except KeyboardInterrupt:   # Ctrl-C while the command was still loading (main handles it after)
    sys.exit(130)
