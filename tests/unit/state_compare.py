"""Detector and monitor states compared up to float rounding (vectorised paths add in another
order than one value at a time: a block's covariance, a cumulative sum)."""

from __future__ import annotations

import math
from typing import Any

from detectors.state import unpack_floats


def close_states(x: Any, y: Any) -> bool:
    """Equal JSON-ready states, floats within 1e-9 relative (packed float arrays unpacked)."""
    if isinstance(x, dict) and "packed" in x:
        return (
            isinstance(y, dict)
            and "packed" in y
            and x.get("shape") == y.get("shape")
            and close_states(unpack_floats(x["packed"]), unpack_floats(y["packed"]))
        )
    if isinstance(x, dict):
        return (
            isinstance(y, dict)
            and x.keys() == y.keys()
            and all(close_states(x[k], y[k]) for k in x)
        )
    if isinstance(x, list | tuple):
        return type(x) is type(y) and len(x) == len(y) and all(map(close_states, x, y))
    if isinstance(x, float) and isinstance(y, float):
        return x == y or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return x == y
