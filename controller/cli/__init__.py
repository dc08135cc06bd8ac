"""The ``gitjob-webhook`` command: the parser, one module per subcommand, and the exit statuses."""
