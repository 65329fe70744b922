"""Prefect tasks: thin wrappers around segflow's Prefect-free core functions."""
