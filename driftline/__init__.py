"""The application layer: the ``driftline`` command, the demo and its simulated model server.

This package sits above `streams/` and `learners/` and may import both; neither imports it.
"""
