"""The Redis key scheme, in one place.

Every per-model key carries the model id in a hash tag (``{model}``), so all keys of one model
live in one Redis Cluster slot and can be written in one pipeline or transaction.

| key                                  | type | content                                        |
|--------------------------------------|------|------------------------------------------------|
| ``<p>:{<model>}:metrics:<window>``   | hash | accuracy, precision, recall, f1, macro_f1,     |
|                                      |      | per_class + confusion (JSON), mae, rmse, r2,   |
|                                      |      | events, event_rate_per_s, missing_rate,        |
|                                      |      | out_of_range_rate, latency quantiles;          |
|                                      |      | windows 1m, 1h, 1d; TTL twice the window       |
| ``<p>:{<model>}:labelled``           | list | newest-first JSON labelled samples (capped)    |
| ``<p>:{<model>}:counters``           | hash | inferences, labels, joined, alarms,            |
|                                      |      | predictions_expired, labels_expired,           |
|                                      |      | join_duplicates                                |
| ``<p>:{<model>}:checkpoint``         | hash | path -> JSON: detector states, last offsets    |
|                                      |      | applied per topic-partition, counts            |
| ``<p>:{<model>}:versions``           | hash | model registry: digest -> version metadata JSON|
| ``<p>:{<model>}:version-names``      | hash | ``v<n>`` -> digest, and digest -> ``v<n>``     |
| ``<p>:{<model>}:aliases``            | hash | champion, previous, candidate -> digest;       |
|                                      |      | generation (bumped by every champion move)     |
| ``<p>:{<model>}:registry-log``       | list | newest-first registry events (capped)          |
| ``<p>:{<model>}:rejections``         | list | newest-first refused candidates (capped)       |
| ``<p>:{<model>}:reference``          | str  | JSON: digest and blob URI of the reference     |
|                                      |      | sample (gate holdout + replay data)            |
| ``<p>:{<model>}:decisions``          | list | newest-first learner decisions (capped)        |
| ``<p>:{<model>}:shadow-reports``     | hash | serving handle id -> its latest shadow report  |
|                                      |      | JSON (expires a day after the last)            |
| ``<p>:{<model>}:online-reports``     | hash | serving handle id -> its latest online-        |
|                                      |      | learning report JSON (same expiry)             |
| ``<p>:flush:<token>``                | str  | set by a worker's flush transaction (on a      |
|                                      |      | Cluster ``<p>:{<model>}:flush:<token>``); a    |
|                                      |      | day TTL                                        |
| ``<p>:{<model>}:counters-outbox``    | hash | Cluster: flush token -> the model's share of   |
|                                      |      | the global counters, until added               |
| ``{<p>:counters}:applied:<t>:<m>``   | str  | Cluster: that share added (a day TTL)          |
| ``<p>:models``                       | set  | model ids seen                                 |
| ``<p>:registered-models``            | set  | model ids with a registry entry                |
| ``<p>:blobs:<digest>``               | str  | model blob (Redis blob store only)             |
| ``<p>:counters``                     | hash | inferences.processed, labels.processed,        |
|                                      |      | deadletter.total, deadletter.<reason>          |

Ratios with nothing to divide (no labels yet) are stored as the empty string.

>>> keys = RedisKeys("driftline")
>>> keys.metrics("churn", "1m")
'driftline:{churn}:metrics:1m'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "driftline"

    def metrics(self, model_id: str, window: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:metrics:{window}"

    def labelled(self, model_id: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:labelled"

    def checkpoint(self, model_id: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:checkpoint"

    def reference_profile(self, model_id: str) -> str:
        """JSON: the model's training inputs (streams/profile.py), for calibrated detectors."""
        return f"{self.prefix}:{{{model_id}}}:reference-profile"

    def pending(self, model_id: str, bucket: int) -> str:
        """Hash: request id -> a prediction waiting for its label, per time bucket (JSON)."""
        return f"{self.prefix}:{{{model_id}}}:pending:{bucket}"

    def pending_layouts(self, model_id: str) -> str:
        """Hash: layout id -> feature names (JSON) of the model's waiting predictions."""
        return f"{self.prefix}:{{{model_id}}}:pending-layouts"

    def open_alarms(self, model_id: str) -> str:
        """Hash: dedup key -> the open alarm (JSON), rewritten with each checkpoint."""
        return f"{self.prefix}:{{{model_id}}}:alarms:open"

    def series(self, model_id: str) -> str:
        """Stream: the model's metrics and detector readings over time (the dashboard's)."""
        return f"{self.prefix}:{{{model_id}}}:series"

    def model_counters(self, model_id: str) -> str:
        return f"{self.prefix}:{{{model_id}}}:counters"

    def flush_token(self, token: str, model_id: str | None = None) -> str:
        """String: set by the worker's flush transaction that carries ``token`` (in the model's
        slot on a Cluster), to tell after a lost answer whether it was applied."""
        if model_id is None:
            return f"{self.prefix}:flush:{token}"
        return f"{self.prefix}:{{{model_id}}}:flush:{token}"

    def counters_outbox(self, model_id: str) -> str:
        """Hash (Cluster): flush token -> the model's share of the global counters (JSON), until
        that flush's last step has added it to :meth:`counters`."""
        return f"{self.prefix}:{{{model_id}}}:counters-outbox"

    def counters_share(self, token: str, model_id: str | None) -> str:
        """String (Cluster): set once a flush's share of the global counters (of ``model_id``,
        or of no model) is added; in :meth:`counters`' slot, so one script does both."""
        return f"{{{self.counters()}}}:applied:{token}:{model_id or ''}"

    def models(self) -> str:
        return f"{self.prefix}:models"

    def counters(self) -> str:
        return f"{self.prefix}:counters"

    def registry(self, model_id: str, part: str) -> str:
        """``versions``, ``version-names``, ``aliases``, ``registry-log``, ``rejections``,
        ``reference``, ``decisions``, ``shadow-reports`` or ``online-reports``."""
        return f"{self.prefix}:{{{model_id}}}:{part}"

    def registered_models(self) -> str:
        return f"{self.prefix}:registered-models"
