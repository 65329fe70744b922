"""The one process set-up segflow's entry points call: quiet TensorFlow, bounded memory.

Importing a segflow module changes nothing outside it. The entry points -- the command line,
the flows Prefect loads by path, the benchmarks, the test suite -- call
:func:`configure_runtime` once, before TensorFlow is imported, because TensorFlow reads its
variables at its first import.
"""

from __future__ import annotations

import os
import sys

__all__ = ["RUNTIME_DEFAULTS", "configure_runtime"]

#: Environment defaults; a value the user already set wins.
RUNTIME_DEFAULTS = {
    # Without these every run prints oneDNN banners and a DT_BOOL fallback error on machines
    # without AVX-512. oneDNN off also keeps results bit-identical across lane packings.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # Prefect's telemetry only fails (and logs) on machines without internet access.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Prefect's temporary server gives up after 20 s; on a busy 2-core machine (TensorFlow in
    # a neighbour process) its start was measured to take longer, failing the whole command.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}

_configured = False


def configure_runtime(*, malloc_arenas: int = 2) -> None:
    """Set segflow's environment defaults and cap glibc's malloc arenas (idempotent).

    Args:
        malloc_arenas: Arenas glibc may use, as ``MALLOC_ARENA_MAX`` would set (a value the
            user set in ``MALLOC_ARENA_MAX`` wins).

    >>> configure_runtime()
    >>> os.environ["TF_ENABLE_ONEDNN_OPTS"] in ("0", "1")
    True
    """
    global _configured
    if _configured:
        return
    for name, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _bound_malloc_arenas(malloc_arenas)
    _configured = True


def _bound_malloc_arenas(arenas: int) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would), unless the user set one.

    Decoder, writer and zarr threads each get an arena by default (up to 8 per core), and
    freed chunk buffers stay cached in them, so peak memory crept up with sequence length:
    measured 424 MB for a 3 GB sequence and 503 MB at 2.5x; capped, 401 MB at 2.5x.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to cap
        pass
