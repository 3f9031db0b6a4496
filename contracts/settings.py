"""Runtime settings, read from the environment (no Faust import: every process shares them).

| variable                   | default                     | meaning                                 |
|----------------------------|-----------------------------|-----------------------------------------|
| ``KAFKA_BOOTSTRAP_SERVERS``| ``127.0.0.1:9092``          | comma-separated host:port list          |
| ``REDIS_URL``              | ``redis://127.0.0.1:6379/0``| Redis for metrics, samples, counters    |
| ``DRIFTLINE_REDIS_CLUSTER``| ``0``                       | ``1``: REDIS_URL names a node of a Redis|
|                            |                             | Cluster (the stream worker writes one   |
|                            |                             | transaction per model)                  |
| ``DRIFTLINE_TOPIC_PREFIX`` | ``driftline``               | topics are ``<prefix>.inferences`` etc. |
| ``DRIFTLINE_KEY_PREFIX``   | the topic prefix            | Redis keys start ``<prefix>:``          |
| ``DRIFTLINE_APP_ID``       | ``<topic prefix>-monitor``  | Faust app id = Kafka consumer group     |
| ``DRIFTLINE_STATE_DIR``    | ``~/.cache/driftline/state``| Faust's local state (kept out of the    |
|                            |                             | working directory)                      |
| ``DRIFTLINE_PARTITIONS``   | ``4``                       | partitions of topics the app creates    |
| ``DRIFTLINE_LATENCY_SLO_MS``| ``250``                    | p99 latency objective (SLO alarm)       |
| ``DRIFTLINE_LOW_CONFIDENCE``| ``0.6``                    | confidence below which a prediction     |
|                            |                             | counts as uncertain                     |
| ``DRIFTLINE_JOIN_TTL_S``   | ``86400``                   | how long (event time) a prediction waits|
|                            |                             | for its label                           |
| ``DRIFTLINE_JOIN_MEMORY``  | ``250``                     | waiting predictions per model kept in   |
|                            |                             | memory (all wait in Redis)              |
| ``DRIFTLINE_MAX_FUTURE_S`` | ``3600``                    | an event stamped further after the      |
|                            |                             | broker's timestamp is dead-lettered     |
| ``DRIFTLINE_BATCH_MAX``    | ``500``                     | messages a worker takes from the stream |
|                            |                             | and processes together                  |
| ``DRIFTLINE_BATCH_EVENTS`` | ``20000``                   | events decoded and observed at once: a  |
|                            |                             | batch of envelopes is cut into chunks   |
| ``DRIFTLINE_BATCH_WAIT_S`` | ``0.05``                    | the longest it waits to fill a batch    |
| ``DRIFTLINE_FLUSH_S``      | ``1``                       | the shortest time between two flushes   |
|                            |                             | to Redis (and offset commits)           |
| ``DRIFTLINE_FLUSH_SHARE``  | ``0.25``                    | the most of the worker's time flushes   |
|                            |                             | may take: after a flush of d seconds the|
|                            |                             | next waits 3 d (many changed models)    |
| ``DRIFTLINE_MAX_MODELS``   | ``10000``                   | monitors a worker keeps in memory; the  |
|                            |                             | least recently seen is checkpointed and |
|                            |                             | dropped to make room                    |
| ``DRIFTLINE_IDLE_EVICT_S`` | ``3600``                    | a model silent this long (wall clock)   |
|                            |                             | is checkpointed and dropped from memory |
| ``DRIFTLINE_MAX_MESSAGE_   | ``1048576``                 | a message larger than this is dead-     |
| BYTES``                    |                             | lettered unread (reason ``too_large``)  |
| ``DRIFTLINE_BLOB_STORE``   | ``~/.local/share/driftline/``| where model blobs live: a directory    |
|                            | ``blobs``                   | (``file:///...``) or ``redis``          |
| ``DRIFTLINE_POLICY``       | (none: built-in defaults)   | TOML update policy for the learner      |
| ``DRIFTLINE_CONFIG``       | (none)                      | the TOML config file: ``[limits]``,     |
|                            |                             | ``[monitor]``, ``[models.<id>]``,       |
|                            |                             | ``[policy]`` (deploy/driftline.example. |
|                            |                             | toml); its keys win over variables      |
| ``DRIFTLINE_RESOLVE_AFTER_S``| ``600``                  | an open alarm resolves once its signal  |
|                            |                             | is back and quiet this long (event time)|
| ``DRIFTLINE_SERIES_EVERY_S``| ``5``                      | how often a model's metrics and detector|
|                            |                             | readings go to its Redis time series    |
|                            |                             | (the dashboard's history; 0: never)     |
| ``DRIFTLINE_SERIES_KEEP``  | ``720``                     | points kept per model (an hour at 5 s)  |
| ``DRIFTLINE_MODEL_FACTORIES``| (none)                    | module prefixes allowed to build torch  |
|                            |                             | models (besides ``learners.zoo``)       |

>>> s = Settings(topic_prefix="t1")
>>> s.topics.inferences, s.topics.deadletter
('t1.inferences', 't1.deadletter')
>>> s.to_env()["DRIFTLINE_TOPIC_PREFIX"]
't1'
>>> isolated = Settings.from_env(topic_prefix="staging")
>>> isolated.key_prefix, isolated.app_id
('staging', 'staging-monitor')
>>> Settings.from_env(latency_slo_ms="fast")
Traceback (most recent call last):
...
ValueError: DRIFTLINE_LATENCY_SLO_MS must be a positive number, got 'fast'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

#: The tables of the config file: the worker reads limits, monitor and models; the learner policy.
CONFIG_TABLES = ("limits", "monitor", "models", "policy")


@dataclass(frozen=True)
class TopicNames:
    prefix: str = "driftline"

    @property
    def inferences(self) -> str:
        return f"{self.prefix}.inferences"

    @property
    def labels(self) -> str:
        return f"{self.prefix}.labels"

    @property
    def alarms(self) -> str:
        return f"{self.prefix}.alarms"

    @property
    def model_updates(self) -> str:
        return f"{self.prefix}.model-updates"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def alarms_retry(self) -> str:
        """Alarms a paging bridge could not deliver yet, parked for a later try."""
        return f"{self.prefix}.alarms.retry"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False  # REDIS_URL is a node of a Redis Cluster
    topic_prefix: str = "driftline"
    key_prefix: str = "driftline"
    app_id: str = "driftline-monitor"
    partitions: int = 4
    flush_s: float = 1.0  # the shortest time between two flushes to Redis
    flush_share: float = 0.25  # the most of the worker's time flushes may take
    labelled_keep: int = 5000  # labelled samples kept per model for the learners
    latency_slo_ms: float = 250.0
    low_confidence: float = 0.6
    join_ttl_s: float = 86_400.0  # how long a prediction waits for its label (event time)
    join_memory: int = 250  # waiting predictions per model kept in memory (all are in Redis)
    max_future_s: float = 3600.0  # how far an event_time may lie after the broker's timestamp
    batch_max: int = 500  # messages taken from the stream and processed together
    batch_events: int = 20_000  # events decoded and observed at once (envelopes carry many)
    batch_wait_s: float = 0.05  # the longest a worker waits to fill a batch (alarm latency)
    max_models: int = 10_000  # monitors kept in memory (model ids come from untrusted input)
    max_message_bytes: int = 1_048_576  # larger messages are dead-lettered unread
    idle_evict_s: float = 3600.0  # a model silent this long leaves memory (its checkpoint stays)
    blob_store: str = "~/.local/share/driftline/blobs"  # a directory, file:///dir, or "redis"
    policy_file: str = ""  # TOML update policy for the learner (empty: the defaults)
    config_file: str = ""  # the TOML config file (streams/config_file.py, learners/policy.py)
    resolve_after_s: float = 600.0  # event time an alarm's signal must be quiet to resolve it
    series_every_s: float = 5.0  # a model's dashboard time series: one point this often
    series_keep: int = 720  # points kept per model
    worker_name: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    @property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    def isolated(self, prefix: str) -> Settings:
        """The same servers with topics, keys and consumer groups of their own (benchmarks)."""
        return replace(self, topic_prefix=prefix, key_prefix=prefix, app_id=prefix)

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` in a child process give these settings."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "DRIFTLINE_REDIS_CLUSTER": "1" if self.redis_cluster else "0",
            "DRIFTLINE_TOPIC_PREFIX": self.topic_prefix,
            "DRIFTLINE_KEY_PREFIX": self.key_prefix,
            "DRIFTLINE_APP_ID": self.app_id,
            "DRIFTLINE_PARTITIONS": str(self.partitions),
            "DRIFTLINE_LATENCY_SLO_MS": repr(self.latency_slo_ms),
            "DRIFTLINE_LOW_CONFIDENCE": repr(self.low_confidence),
            "DRIFTLINE_JOIN_TTL_S": repr(self.join_ttl_s),
            "DRIFTLINE_JOIN_MEMORY": str(self.join_memory),
            "DRIFTLINE_MAX_FUTURE_S": repr(self.max_future_s),
            "DRIFTLINE_BATCH_MAX": str(self.batch_max),
            "DRIFTLINE_BATCH_EVENTS": str(self.batch_events),
            "DRIFTLINE_BATCH_WAIT_S": repr(self.batch_wait_s),
            "DRIFTLINE_FLUSH_S": repr(self.flush_s),
            "DRIFTLINE_FLUSH_SHARE": repr(self.flush_share),
            "DRIFTLINE_MAX_MODELS": str(self.max_models),
            "DRIFTLINE_MAX_MESSAGE_BYTES": str(self.max_message_bytes),
            "DRIFTLINE_IDLE_EVICT_S": repr(self.idle_evict_s),
            "DRIFTLINE_BLOB_STORE": self.blob_store,
            "DRIFTLINE_POLICY": self.policy_file,
            "DRIFTLINE_CONFIG": self.config_file,
            "DRIFTLINE_RESOLVE_AFTER_S": repr(self.resolve_after_s),
            "DRIFTLINE_SERIES_EVERY_S": repr(self.series_every_s),
            "DRIFTLINE_SERIES_KEEP": str(self.series_keep),
        }

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "kafka_bootstrap": env.get("KAFKA_BOOTSTRAP_SERVERS", cls.kafka_bootstrap),
            "redis_url": env.get("REDIS_URL", cls.redis_url),
            "redis_cluster": _flag(
                "DRIFTLINE_REDIS_CLUSTER", env.get("DRIFTLINE_REDIS_CLUSTER", "0")
            ),
            "topic_prefix": env.get("DRIFTLINE_TOPIC_PREFIX", cls.topic_prefix),
            "partitions": int(env.get("DRIFTLINE_PARTITIONS", cls.partitions)),
            "latency_slo_ms": env.get("DRIFTLINE_LATENCY_SLO_MS", cls.latency_slo_ms),
            "low_confidence": env.get("DRIFTLINE_LOW_CONFIDENCE", cls.low_confidence),
            "join_ttl_s": env.get("DRIFTLINE_JOIN_TTL_S", cls.join_ttl_s),
            "join_memory": env.get("DRIFTLINE_JOIN_MEMORY", cls.join_memory),
            "max_future_s": env.get("DRIFTLINE_MAX_FUTURE_S", cls.max_future_s),
            "batch_max": env.get("DRIFTLINE_BATCH_MAX", cls.batch_max),
            "batch_events": env.get("DRIFTLINE_BATCH_EVENTS", cls.batch_events),
            "batch_wait_s": env.get("DRIFTLINE_BATCH_WAIT_S", cls.batch_wait_s),
            "flush_s": env.get("DRIFTLINE_FLUSH_S", cls.flush_s),
            "flush_share": env.get("DRIFTLINE_FLUSH_SHARE", cls.flush_share),
            "max_models": env.get("DRIFTLINE_MAX_MODELS", cls.max_models),
            "max_message_bytes": env.get("DRIFTLINE_MAX_MESSAGE_BYTES", cls.max_message_bytes),
            "idle_evict_s": env.get("DRIFTLINE_IDLE_EVICT_S", cls.idle_evict_s),
            "blob_store": env.get("DRIFTLINE_BLOB_STORE", cls.blob_store),
            "policy_file": env.get("DRIFTLINE_POLICY", cls.policy_file),
            "config_file": env.get("DRIFTLINE_CONFIG", cls.config_file),
            "resolve_after_s": env.get("DRIFTLINE_RESOLVE_AFTER_S", cls.resolve_after_s),
            "series_every_s": env.get("DRIFTLINE_SERIES_EVERY_S", cls.series_every_s),
            "series_keep": env.get("DRIFTLINE_SERIES_KEEP", cls.series_keep),
        }
        values.update(overrides)
        # One deployment name isolates everything: Redis keys and the consumer group follow the
        # topic prefix unless set on their own.
        prefix = str(values["topic_prefix"])
        values.setdefault("key_prefix", env.get("DRIFTLINE_KEY_PREFIX", prefix))
        values.setdefault("app_id", env.get("DRIFTLINE_APP_ID", f"{prefix}-monitor"))
        values["latency_slo_ms"] = _number("DRIFTLINE_LATENCY_SLO_MS", values["latency_slo_ms"])
        values["low_confidence"] = _number("DRIFTLINE_LOW_CONFIDENCE", values["low_confidence"])
        values["join_ttl_s"] = _number("DRIFTLINE_JOIN_TTL_S", values["join_ttl_s"])
        values["max_future_s"] = _number("DRIFTLINE_MAX_FUTURE_S", values["max_future_s"])
        values["batch_wait_s"] = _number("DRIFTLINE_BATCH_WAIT_S", values["batch_wait_s"])
        values["flush_s"] = _number("DRIFTLINE_FLUSH_S", values["flush_s"])
        values["flush_share"] = _number("DRIFTLINE_FLUSH_SHARE", values["flush_share"])
        values["idle_evict_s"] = _number("DRIFTLINE_IDLE_EVICT_S", values["idle_evict_s"])
        values["resolve_after_s"] = _number("DRIFTLINE_RESOLVE_AFTER_S", values["resolve_after_s"])
        values["series_every_s"] = _number(
            "DRIFTLINE_SERIES_EVERY_S", values["series_every_s"], allow_zero=True
        )
        for key, name in (
            ("batch_max", "DRIFTLINE_BATCH_MAX"),
            ("batch_events", "DRIFTLINE_BATCH_EVENTS"),
            ("max_models", "DRIFTLINE_MAX_MODELS"),
            ("join_memory", "DRIFTLINE_JOIN_MEMORY"),
            ("max_message_bytes", "DRIFTLINE_MAX_MESSAGE_BYTES"),
            ("series_keep", "DRIFTLINE_SERIES_KEEP"),
        ):
            number = _number(name, values[key])
            if number != int(number):
                raise ValueError(f"{name} must be a whole number, got {number}")
            values[key] = int(number)
        if values["flush_share"] > 1:
            raise ValueError(
                f"DRIFTLINE_FLUSH_SHARE must be at most 1, got {values['flush_share']}"
            )
        if values["low_confidence"] >= 1:
            raise ValueError(
                f"DRIFTLINE_LOW_CONFIDENCE must be below 1, got {values['low_confidence']}"
            )
        return cls(**values)  # type: ignore[arg-type]


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _number(name: str, raw: object, allow_zero: bool = False) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = -1.0
    if not (value > 0 or (allow_zero and value == 0)):
        kind = "a number >= 0" if allow_zero else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {raw!r}")
    return value
