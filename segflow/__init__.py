"""segflow: long segmented sequences from source files to Zarr v3 and through a stateful LSTM.

The ``segflow`` package is the Prefect-free core. Prefect lives only in ``tasks/`` and
``flows/``; storage backends live in ``storage/``.
"""

__version__ = "0.1.0"
