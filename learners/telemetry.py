"""The learner's Prometheus metrics (served on ``/metrics`` by ``driftline learner``).

``driftline_learner_decisions_total{outcome}`` counts every decided update: ``promoted``,
``rolled_back`` (the bake window brought the previous champion back), ``rejected`` (gate or
shadow), ``gave_up``, ``skipped``, ``conflict``, ``failed``.  Promotions and rollbacks are the two
an on-call engineer watches.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter("driftline_learner_decisions_total", "Update decisions by outcome", ["outcome"])
JOBS_IN_FLIGHT = Gauge("driftline_learner_jobs_in_flight", "Model updates running now")
