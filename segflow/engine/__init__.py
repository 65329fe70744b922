"""Streaming engine: lane scheduling, windowing, input pipeline, stateful model.

Modules are imported explicitly (``from segflow.engine.scheduler import schedule``) so that
the pure-NumPy parts (``scheduler``, ``windowing``) never pull in TensorFlow.
"""
