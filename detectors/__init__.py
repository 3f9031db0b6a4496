"""driftline's drift detectors: pure computation, no Kafka, no Redis, no Faust."""

from detectors.adwin import ADWIN
from detectors.autoencoder import AutoencoderDrift
from detectors.base import REGISTRY, DriftDetector, detector_from_state
from detectors.cbpe import CBPE
from detectors.class_distribution import ClassDistribution
from detectors.cusum import CUSUM
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.feature_drift import FeatureDrift
from detectors.hddm_a import HDDM_A
from detectors.hddm_w import HDDM_W
from detectors.input_outliers import InputOutlierRate
from detectors.kswin import KSWIN
from detectors.latency_slo import LatencySLO
from detectors.mahalanobis import MahalanobisDrift
from detectors.mmd import MMDDrift
from detectors.page_hinkley import PageHinkley
from detectors.result import DriftResult
from detectors.rolling import RollingReference
from detectors.state import StateError
from detectors.throughput import ThroughputDrop

__all__ = [
    "ADWIN",
    "CBPE",
    "CUSUM",
    "DDM",
    "EDDM",
    "HDDM_A",
    "HDDM_W",
    "KSWIN",
    "REGISTRY",
    "AutoencoderDrift",
    "ClassDistribution",
    "DriftDetector",
    "DriftResult",
    "FeatureDrift",
    "InputOutlierRate",
    "LatencySLO",
    "MMDDrift",
    "MahalanobisDrift",
    "PageHinkley",
    "RollingReference",
    "StateError",
    "ThroughputDrop",
    "detector_from_state",
]
