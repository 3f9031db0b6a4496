"""Shared contracts: what `streams/` and `learners/` both speak, below both of them.

Event, alarm and model-update schemas, settings and the Redis key scheme live here, so that the
monitoring side (`streams/`) and the update side (`learners/`) import these and never each other.
Nothing in this package does I/O or imports Kafka, Redis, Faust or torch.
"""
