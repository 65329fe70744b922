"""segflow: long segmented sequences from source files to Zarr v3 and through a stateful LSTM.

The ``segflow`` package is the Prefect-free core. Prefect lives only in ``tasks/`` and
``flows/``; storage backends live in ``storage/``.
"""

import os as _os

# TensorFlow reads these once, at its first import, which always comes after this package's:
# without them every run prints oneDNN banners and a DT_BOOL fallback error on machines
# without AVX-512. oneDNN off also keeps results bit-identical across lane packings.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
