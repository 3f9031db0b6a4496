"""driftline's drift detectors: pure computation, no Kafka, no Redis, no Faust."""

from detectors.adwin import ADWIN
from detectors.base import REGISTRY, DriftDetector, detector_from_state
from detectors.cusum import CUSUM
from detectors.page_hinkley import PageHinkley
from detectors.result import DriftResult
from detectors.state import StateError

__all__ = [
    "ADWIN",
    "CUSUM",
    "REGISTRY",
    "DriftDetector",
    "DriftResult",
    "PageHinkley",
    "StateError",
    "detector_from_state",
]
