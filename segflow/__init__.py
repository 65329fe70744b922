"""segflow: long segmented sequences from source files to Zarr v3 and through a stateful LSTM.

The ``segflow`` package is the Prefect-free core. Prefect lives only in ``tasks/`` and
``flows/``, the command line in ``segflow_cli/``, storage backends in ``storage/``. Importing
it has no side effects; entry points call :func:`segflow.runtime.configure_runtime`.
"""

__version__ = "0.1.0"
