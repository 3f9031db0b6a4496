"""The model registry: immutable content-addressed versions, atomic aliases, an event log.

A version is the SHA-256 of its blob.  Registering the same bytes twice gives the same version;
a version's metadata (parent, strategy, data window, metrics, probes, adapter, description,
time) is written once and never changed.  Versions are named ``v1``, ``v2``, ... in the order
they were first registered.

Aliases (``champion``, ``previous``, ``candidate``) and the model's *generation* live in one
hash and move in one Lua script each, so two learners can never both promote from the same
champion (the second gets :class:`RegistryConflict`), and every champion move, rollbacks
included, raises the generation: serving handles apply only moves with a higher generation, so
versions only move forward.  Blobs live in a :mod:`~learners.blobstore`; Redis holds metadata.

The keys are in :mod:`contracts.redis_keys`.  The client is redis-py's synchronous one: the CLI
uses it directly, async workers through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from contracts.updates import ModelUpdate
from learners.adapters.base import InvalidModel, ModelAdapter, adapter_from_bytes
from learners.blobstore import BlobStore, blob_store_from_url, digest_of, fetch_verified
from learners.data import Dataset

ALIASES = ("champion", "previous", "candidate")
LOG_KEEP = 1000
HANDLE_REPORTS_TTL_S = 86_400  # a handle that stopped reporting drops out after a day
HANDLE_REPORT_KINDS = ("shadow", "online")

# KEYS: versions, names, aliases, log (one model's: one Redis Cluster slot) ;
# ARGV: digest, metadata, entry, keep
_REGISTER = """
local name = redis.call('HGET', KEYS[2], ARGV[1])
if name then return {name, 0} end
local n = redis.call('HINCRBY', KEYS[3], 'sequence', 1)
name = 'v' .. n
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], name, ARGV[1], ARGV[1], name)
redis.call('LPUSH', KEYS[4], (string.gsub(ARGV[3], '@VERSION@', name)))
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
return {name, 1}
"""

# KEYS: aliases, log, versions ; ARGV: digest, expected champion ('*' = any), entry, keep
_PROMOTE = """
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return {err='unknown version'} end
local current = redis.call('HGET', KEYS[1], 'champion') or ''
if ARGV[2] ~= '*' and ARGV[2] ~= current then
  return {err='conflict: champion is ' .. current .. ', expected ' .. ARGV[2]}
end
if current == ARGV[1] then return {err='already champion'} end
if current ~= '' then redis.call('HSET', KEYS[1], 'previous', current) end
redis.call('HSET', KEYS[1], 'champion', ARGV[1])
if redis.call('HGET', KEYS[1], 'candidate') == ARGV[1] then redis.call('HDEL', KEYS[1], 'candidate') end
local g = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('LPUSH', KEYS[2], (string.gsub(ARGV[3], '"@GENERATION@"', g)))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return {g, current}
"""

# KEYS: aliases, log ; ARGV: expected champion ('*' = any), entry, keep
_ROLLBACK = """
local current = redis.call('HGET', KEYS[1], 'champion')
local previous = redis.call('HGET', KEYS[1], 'previous')
if not previous then return {err='no previous champion to roll back to'} end
if ARGV[1] ~= '*' and ARGV[1] ~= current then
  return {err='conflict: champion is ' .. tostring(current) .. ', expected ' .. ARGV[1]}
end
redis.call('HSET', KEYS[1], 'champion', previous, 'previous', current)
local g = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('LPUSH', KEYS[2], (string.gsub(ARGV[2], '"@GENERATION@"', g)))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return {g, previous, current}
"""


class RegistryError(LookupError):
    """A version or alias that does not exist, or a move that is not allowed."""


class RegistryConflict(RegistryError):
    """The champion moved since the caller read it (another learner or an operator)."""


@dataclass(frozen=True)
class ModelVersion:
    model_id: str
    version: str
    digest: str
    adapter: str
    uri: str
    created_at: float
    parent: str = ""
    strategy: str = "manual"
    data_window: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_update(self, generation: int, action: str = "promote", **fields: Any) -> ModelUpdate:
        """The model-update message that tells handles to serve (or shadow) this version."""
        return ModelUpdate(
            self.model_id,
            self.version,
            self.digest,
            self.uri,
            self.adapter,
            generation,
            action=action,
            **fields,
        )


@dataclass(frozen=True)
class AliasMove:
    model_id: str
    action: str  # "promote" or "rollback"
    champion: str  # digest now serving
    replaced: str  # digest it replaced ("" if none)
    generation: int


class ModelRegistry:
    def __init__(self, client, keys: RedisKeys, blobs: BlobStore) -> None:
        self.client, self.keys, self.blobs = client, keys, blobs
        self._register = client.register_script(_REGISTER)
        self._promote = client.register_script(_PROMOTE)
        self._rollback = client.register_script(_ROLLBACK)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry the settings name: their Redis, their blob store."""
        from contracts.redis_client import connect

        client = connect(settings)
        blobs = blob_store_from_url(settings.blob_store, client, settings.key_prefix)
        return cls(client, RedisKeys(settings.key_prefix), blobs)

    def close(self) -> None:
        self.client.close()

    def _k(self, model_id: str, part: str) -> str:
        return self.keys.registry(model_id, part)

    @staticmethod
    def _entry(action: str, **fields: Any) -> str:
        return json.dumps({"action": action, "at": time.time(), **fields}, separators=(",", ":"))

    # -- versions -----------------------------------------------------------------------------
    def register(
        self,
        model_id: str,
        adapter: ModelAdapter,
        parent: str = "",
        strategy: str = "manual",
        data_window: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        probes: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store the blob and its metadata; the same bytes give back the existing version."""
        blob = adapter.to_bytes()
        digest = digest_of(blob)
        uri = self.blobs.put(blob)
        meta = {
            "adapter": adapter.kind,
            "uri": uri,
            "created_at": time.time(),
            "parent": parent,
            "strategy": strategy,
            "data_window": data_window or {},
            "metrics": metrics or {},
            "probes": probes or {},
            "description": adapter.describe().to_dict(),
            "size_bytes": len(blob),
        }
        entry = self._entry("registered", digest=digest, version="@VERSION@", strategy=strategy)
        # the set of registered models is a key of its own (another Cluster slot): added first,
        # so a model is never registered without being listed (listed without versions is fine)
        self.client.sadd(self.keys.registered_models(), model_id)
        self._register(
            keys=[
                self._k(model_id, "versions"),
                self._k(model_id, "version-names"),
                self._k(model_id, "aliases"),
                self._k(model_id, "registry-log"),
            ],
            args=[digest, json.dumps(meta, separators=(",", ":")), entry, LOG_KEEP],
        )
        return self.get(model_id, digest)

    def get(self, model_id: str, ref: str) -> ModelVersion:
        """A version by digest, name (``v3``) or alias (``champion``, ``previous``, ...)."""
        digest = self.resolve(model_id, ref)
        raw = self.client.hget(self._k(model_id, "versions"), digest)
        name = self.client.hget(self._k(model_id, "version-names"), digest)
        if raw is None or name is None:
            raise RegistryError(f"model {model_id!r} has no version {ref!r}")
        meta = json.loads(raw)
        return ModelVersion(model_id=model_id, version=name.decode(), digest=digest, **meta)

    def resolve(self, model_id: str, ref: str) -> str:
        if ref.startswith("sha256:"):
            return ref
        if ref in ALIASES:
            digest = self.client.hget(self._k(model_id, "aliases"), ref)
        else:
            digest = self.client.hget(self._k(model_id, "version-names"), ref)
        if digest is None:
            raise RegistryError(
                f"model {model_id!r} has no {'alias' if ref in ALIASES else 'version'} {ref!r}"
            )
        return digest.decode()

    def versions(self, model_id: str) -> list[ModelVersion]:
        digests = self.client.hkeys(self._k(model_id, "versions"))
        found = [self.get(model_id, d.decode()) for d in digests]
        return sorted(found, key=lambda v: int(v.version[1:]))

    def load(self, version: ModelVersion) -> ModelAdapter:
        """The model, fetched from the blob store and checked against its digest."""
        return adapter_from_bytes(
            version.adapter, fetch_verified(self.blobs, version.uri, version.digest)
        )

    def models(self) -> list[str]:
        return sorted(m.decode() for m in self.client.smembers(self.keys.registered_models()))

    # -- aliases ------------------------------------------------------------------------------
    def aliases(self, model_id: str) -> dict[str, str]:
        row = self.client.hgetall(self._k(model_id, "aliases"))
        return {k.decode(): v.decode() for k, v in row.items()}

    def generation(self, model_id: str) -> int:
        return int(self.aliases(model_id).get("generation", 0))

    def champion(self, model_id: str) -> ModelVersion | None:
        try:
            return self.get(model_id, "champion")
        except RegistryError:
            return None

    def set_candidate(self, model_id: str, ref: str) -> ModelVersion:
        version = self.get(model_id, ref)
        self.client.hset(self._k(model_id, "aliases"), "candidate", version.digest)
        return version

    def promote(
        self, model_id: str, ref: str, expected_champion: str | None = None, reason: str = ""
    ) -> AliasMove:
        """Make ``ref`` champion (the old one becomes ``previous``).  With
        ``expected_champion`` (a digest, "" for none) the move fails with
        :class:`RegistryConflict` if the champion is no longer that one."""
        version = self.get(model_id, ref)
        entry = self._entry(
            "promoted",
            digest=version.digest,
            version=version.version,
            reason=reason,
            generation="@GENERATION@",
        )
        try:
            generation, replaced = self._promote(
                keys=[
                    self._k(model_id, "aliases"),
                    self._k(model_id, "registry-log"),
                    self._k(model_id, "versions"),
                ],
                args=[
                    version.digest,
                    "*" if expected_champion is None else expected_champion,
                    entry,
                    LOG_KEEP,
                ],
            )
        except Exception as exc:  # redis raises ResponseError with the script's message
            raise _registry_error(exc) from None
        return AliasMove(model_id, "promote", version.digest, replaced.decode(), int(generation))

    def rollback(
        self, model_id: str, reason: str = "", expected_champion: str | None = None
    ) -> AliasMove:
        """Bring ``previous`` back as champion (the current one becomes ``previous``)."""
        entry = self._entry("rolled_back", reason=reason, generation="@GENERATION@")
        try:
            generation, restored, replaced = self._rollback(
                keys=[self._k(model_id, "aliases"), self._k(model_id, "registry-log")],
                args=["*" if expected_champion is None else expected_champion, entry, LOG_KEEP],
            )
        except Exception as exc:
            raise _registry_error(exc) from None
        return AliasMove(
            model_id, "rollback", restored.decode(), replaced.decode(), int(generation)
        )

    # -- reference sample ---------------------------------------------------------------------
    def set_reference(self, model_id: str, data: Dataset) -> str:
        """Store a fixed sample of known-good labelled data (e.g. the training data's holdout).

        The learner replays half of it against forgetting and the gate scores on the other
        half (:meth:`~learners.data.Dataset.halves`)."""
        blob = data.to_bytes()
        uri = self.blobs.put(blob)
        doc = {"digest": digest_of(blob), "uri": uri, "rows": len(data), "at": time.time()}
        self.client.set(self._k(model_id, "reference"), json.dumps(doc))
        return uri

    def reference(self, model_id: str) -> Dataset | None:
        raw = self.client.get(self._k(model_id, "reference"))
        if raw is None:
            return None
        doc = json.loads(raw)
        return Dataset.from_bytes(fetch_verified(self.blobs, doc["uri"], doc["digest"]))

    # -- records ------------------------------------------------------------------------------
    def record_rejection(self, model_id: str, record: dict[str, Any]) -> None:
        key = self._k(model_id, "rejections")
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(
            key, json.dumps({"at": time.time(), **record}, separators=(",", ":"), default=str)
        )
        pipe.ltrim(key, 0, LOG_KEEP - 1)
        pipe.execute()

    def rejections(self, model_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return [
            json.loads(r) for r in self.client.lrange(self._k(model_id, "rejections"), 0, limit - 1)
        ]

    def record_handle_report(
        self, model_id: str, kind: str, handle: str, report: dict[str, Any]
    ) -> None:
        """A serving handle's report, one field per handle under ``<kind>-reports``: ``shadow``
        (agreement, both models' accuracy on labelled requests) or ``online`` (the learning
        copy against the published version); the hash expires a day after the last report."""
        key = self._k(model_id, self._report_key(kind))
        doc = json.dumps({"at": time.time(), **report}, separators=(",", ":"), default=str)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, handle, doc)
        pipe.expire(key, HANDLE_REPORTS_TTL_S)
        pipe.execute()

    def handle_reports(self, model_id: str, kind: str) -> dict[str, dict[str, Any]]:
        """The latest report of this kind from each handle, by handle id."""
        raw = self.client.hgetall(self._k(model_id, self._report_key(kind)))
        return {_text(h): json.loads(r) for h, r in raw.items()}

    @staticmethod
    def _report_key(kind: str) -> str:
        if kind not in HANDLE_REPORT_KINDS:
            raise ValueError(f"unknown handle report {kind!r}; known: {HANDLE_REPORT_KINDS}")
        return f"{kind}-reports"

    def history(self, model_id: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.client.lrange(self._k(model_id, "registry-log"), 0, limit - 1)
        return [json.loads(r) for r in rows]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _registry_error(exc: Exception) -> RegistryError:
    text = str(exc)
    if "conflict" in text:
        return RegistryConflict(text)
    if isinstance(exc, RegistryError | InvalidModel):
        return exc  # type: ignore[return-value]
    return RegistryError(text)
