"""Helpers the tests share: waiting on conditions, free ports, running the service as a process."""
