"""The model-update message on ``<prefix>.model-updates`` (key: model id, value: JSON).

>>> from learners.model import LinearModel
>>> m = LinearModel({"x": 1.0}, 0.0)
>>> u = ModelUpdate.for_model("churn", "v2", m, parent_version="v1", reason="churn/error:error/adwin")
>>> decode_update(u.to_json()).model == m
True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from learners.model import InvalidModel, LinearModel


@dataclass(frozen=True)
class ModelUpdate:
    model_id: str
    version: str
    digest: str
    model: LinearModel
    parent_version: str = ""
    reason: str = ""
    created_at: float = 0.0
    evaluation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_model(
        cls, model_id: str, version: str, model: LinearModel, **kwargs: Any
    ) -> ModelUpdate:
        kwargs.setdefault("created_at", time.time())
        return cls(model_id=model_id, version=version, digest=model.digest(), model=model, **kwargs)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "type": "io.driftline.model-update.v1",
                "model_id": self.model_id,
                "version": self.version,
                "digest": self.digest,
                "parent_version": self.parent_version,
                "reason": self.reason,
                "created_at": self.created_at,
                "evaluation": self.evaluation,
                "model": self.model.to_dict(),
            },
            separators=(",", ":"),
        ).encode()


def decode_update(raw: bytes | str) -> ModelUpdate:
    """Parse a model update and check the model against its digest."""
    try:
        doc = json.loads(raw)
        model = LinearModel.from_dict(doc["model"])
        update = ModelUpdate(
            model_id=str(doc["model_id"]),
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            model=model,
            parent_version=str(doc.get("parent_version", "")),
            reason=str(doc.get("reason", "")),
            created_at=float(doc.get("created_at", 0.0)),
            evaluation=dict(doc.get("evaluation", {})),
        )
    except InvalidModel:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidModel(f"malformed model update: {exc!r}") from None
    if model.digest() != update.digest:
        raise InvalidModel(
            f"digest mismatch: message says {update.digest}, content is {model.digest()}"
        )
    return update
