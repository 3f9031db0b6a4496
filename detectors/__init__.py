"""driftline's drift detectors: pure computation, no Kafka, no Redis, no Faust."""

from detectors.adwin import ADWIN
from detectors.base import REGISTRY, DriftDetector, detector_from_state
from detectors.cusum import CUSUM
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.hddm_a import HDDM_A
from detectors.hddm_w import HDDM_W
from detectors.kswin import KSWIN
from detectors.page_hinkley import PageHinkley
from detectors.result import DriftResult
from detectors.state import StateError

__all__ = [
    "ADWIN",
    "CUSUM",
    "DDM",
    "EDDM",
    "HDDM_A",
    "HDDM_W",
    "KSWIN",
    "REGISTRY",
    "DriftDetector",
    "DriftResult",
    "PageHinkley",
    "StateError",
    "detector_from_state",
]
