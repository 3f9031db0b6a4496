"""Reference profiles: a model's training inputs, so its input detectors need no warm-up.

Without one, each input detector learns "normal" from the model's first live values (2,000 for
the default CUSUM): on a slow stream that is days of silence.  A profile is a sample of the rows
the model was trained on, stored in Redis (``<prefix>:{<model>}:reference-profile``) by
``driftline reference set <model> train.csv``.  When the worker first meets a model that has no
checkpoint, it feeds the profile to the model's input signals (every feature, the feature
vector, input outliers) before the first live event: they start calibrated.  The model's own
signals (score, predicted class, error rate) still learn from live traffic, which is what the
model does in production.  A checkpoint, once there, always wins over the profile.

>>> profile = ReferenceProfile.from_rows(["b", "a"], [[1.0, 2.0], [3.0, 4.0]])
>>> profile.features, profile.columns()["a"]
(['a', 'b'], [2.0, 4.0])
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

MAX_ROWS = 20_000


class ProfileError(ValueError):
    """A reference file that cannot become a profile (the message says why)."""


@dataclass(frozen=True)
class ReferenceProfile:
    features: list[str]  # sorted: the layout the monitor's vector detectors use
    rows: list[list[float]]

    @classmethod
    def from_rows(cls, names: list[str], rows: list[list[float]]) -> ReferenceProfile:
        order = sorted(range(len(names)), key=lambda j: names[j])
        return cls([names[j] for j in order], [[row[j] for j in order] for row in rows])

    @classmethod
    def from_csv(
        cls, path: Path, drop: tuple[str, ...] = (), max_rows: int = MAX_ROWS
    ) -> ReferenceProfile:
        """Numeric columns of a CSV (columns in ``drop``, e.g. the label, left out)."""
        try:
            with path.open(newline="") as f:
                records = list(csv.DictReader(f))
        except OSError as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from None
        if not records:
            raise ProfileError(f"{path} has no rows")
        names = [c for c in records[0] if c not in drop]
        rows = []
        for n, record in enumerate(records[:max_rows], start=2):
            try:
                row = [float(record[c]) for c in names]
            except (TypeError, ValueError) as exc:
                raise ProfileError(
                    f"{path}, line {n}: every feature column must be a number ({exc}); "
                    f"leave other columns out with --drop"
                ) from None
            if not all(map(math.isfinite, row)):
                raise ProfileError(f"{path}, line {n}: NaN or infinity in a feature column")
            rows.append(row)
        return cls.from_rows(names, rows)

    def columns(self) -> dict[str, list[float]]:
        return {name: [row[j] for row in self.rows] for j, name in enumerate(self.features)}

    def to_json(self) -> str:
        return json.dumps({"features": self.features, "rows": self.rows}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ReferenceProfile:
        doc = json.loads(raw)
        return cls([str(n) for n in doc["features"]], [[float(v) for v in r] for r in doc["rows"]])
