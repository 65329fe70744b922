"""segflow: long segmented sequences from source files to Zarr v3 and through a stateful LSTM.

The ``segflow`` package is the Prefect-free core. Prefect lives only in ``tasks/`` and
``flows/``; storage backends live in ``storage/``.
"""

import os as _os
import sys as _sys

# TensorFlow reads these once, at its first import, which always comes after this package's:
# without them every run prints oneDNN banners and a DT_BOOL fallback error on machines
# without AVX-512. oneDNN off also keeps results bit-identical across lane packings.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")



def _bound_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would), unless the user set one.

    Decoder, writer and zarr threads each get an arena by default (up to 8 per core), and
    freed chunk buffers stay cached in them, so peak memory crept up with sequence length:
    measured 424 MB for a 3 GB sequence and 503 MB at 2.5x; capped, 401 MB at 2.5x.
    """
    if _os.environ.get("MALLOC_ARENA_MAX") or not _sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to cap
        pass


_bound_malloc_arenas()

__version__ = "0.1.0"
