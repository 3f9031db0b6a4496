"""The model-update message on ``<prefix>.model-updates`` (key: model id, value: JSON).

It says *which* version now serves and where to fetch it, never the weights: ``digest`` (the
SHA-256 of the blob), ``uri`` (the blob store location), ``adapter`` (how to load it) and
``generation`` (raised by every champion move, rollbacks included: a handle ignores an update
whose generation is not above the one it serves, so versions only move forward).

>>> u = ModelUpdate("churn", "v2", "sha256:" + "0" * 64, "file:///blobs/x", "torch", 2,
...                 action="promote", parent_version="v1", reason="churn/error:error/cusum")
>>> decode_update(u.to_json()) == u
True
>>> decode_update(b'{"type": "other"}')
Traceback (most recent call last):
...
contracts.updates.InvalidUpdate: not a io.driftline.model-update.v2 message
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

UPDATE_TYPE = "io.driftline.model-update.v2"
ACTIONS = ("promote", "rollback", "shadow")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class InvalidUpdate(ValueError):
    """A message on the model-updates topic that is not a valid model update."""


@dataclass(frozen=True)
class ModelUpdate:
    model_id: str
    version: str
    digest: str
    uri: str
    adapter: str
    generation: int
    action: str = "promote"
    parent_version: str = ""
    reason: str = ""
    created_at: float = field(default_factory=time.time)
    evaluation: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> bytes:
        return json.dumps({"type": UPDATE_TYPE, **asdict(self)}, separators=(",", ":")).encode()


def decode_update(raw: bytes | str) -> ModelUpdate:
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("type") != UPDATE_TYPE:
            raise InvalidUpdate(f"not a {UPDATE_TYPE} message")
        update = ModelUpdate(
            model_id=str(doc["model_id"]),
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            uri=str(doc["uri"]),
            adapter=str(doc["adapter"]),
            generation=int(doc["generation"]),
            action=str(doc.get("action", "promote")),
            parent_version=str(doc.get("parent_version", "")),
            reason=str(doc.get("reason", "")),
            created_at=float(doc.get("created_at", 0.0)),
            evaluation=dict(doc.get("evaluation", {})),
        )
    except InvalidUpdate:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidUpdate(f"malformed model update: {exc!r}") from None
    if not _DIGEST.fullmatch(update.digest):
        raise InvalidUpdate(f"digest must be sha256:<64 hex>, got {update.digest!r}")
    if update.action not in ACTIONS:
        raise InvalidUpdate(f"action must be one of {ACTIONS}, got {update.action!r}")
    return update
