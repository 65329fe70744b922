"""The ``segflow`` command line: the application layer on top of flows, tasks and the core.

Nothing below imports this package. :mod:`segflow_cli.app` builds the Typer app and calls the
runtime set-up before any command imports TensorFlow or Prefect.
"""
