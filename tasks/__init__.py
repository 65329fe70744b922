"""Prefect tasks: thin wrappers around segflow's Prefect-free core functions.

Importing this package lets the process read credentials blocks (a config's
``credentials_block``): the flows' process imports it, and so does every Dask worker that runs
one of these tasks, before it opens a store.
"""

from storage.credentials import register_resolver
from tasks.credentials import block_options

register_resolver(block_options)
