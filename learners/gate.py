"""Champion vs challenger, as pure computation.

The challenger starts from the champion's weights and is updated online (river's logistic
regression, a few passes) on the older part of the recent labelled samples; both are scored on
the newest part, which neither saw in training.  The challenger is promoted only if it beats
the champion by at least ``min_gain`` accuracy on at least ``min_holdout`` held-out samples.

>>> import random
>>> from learners.model import LinearModel
>>> rng = random.Random(3)
>>> samples = []
>>> for _ in range(600):
...     x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
...     samples.append((x, int(x["b"] > 0)))          # the concept now depends on b ...
>>> champion = LinearModel({"a": 3.0, "b": 0.0}, 0.0)   # ... the champion still uses a
>>> challenger, verdict = champion_vs_challenger(champion, samples)
>>> verdict.promote, verdict.challenger_accuracy > verdict.champion_accuracy + 0.2
(True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from learners.model import LinearModel

Sample = tuple[dict[str, float], int]


@dataclass(frozen=True)
class GateVerdict:
    promote: bool
    champion_accuracy: float
    challenger_accuracy: float
    n_train: int
    n_holdout: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(model: LinearModel, samples: list[Sample]) -> float:
    if not samples:
        return 0.0
    return sum(model.predict(x) == y for x, y in samples) / len(samples)


def train_challenger(
    champion: LinearModel, train: list[Sample], epochs: int = 3, learning_rate: float = 0.05
) -> LinearModel:
    """Online updates (one ``learn_one`` per sample, ``epochs`` passes) from the champion's weights."""
    model = champion.to_river(learning_rate)
    for _ in range(epochs):
        for x, y in train:
            model.learn_one(x, bool(y))
    return LinearModel.from_river(model)


def champion_vs_challenger(
    champion: LinearModel,
    samples: list[Sample],
    holdout_fraction: float = 0.3,
    min_holdout: int = 50,
    min_gain: float = 0.02,
    epochs: int = 3,
) -> tuple[LinearModel | None, GateVerdict]:
    """``samples`` oldest first.  Returns the challenger (or None if none was trained) and why."""
    n_holdout = int(len(samples) * holdout_fraction)
    train, holdout = samples[: len(samples) - n_holdout], samples[len(samples) - n_holdout :]
    if n_holdout < min_holdout or not train:
        verdict = GateVerdict(
            False,
            0.0,
            0.0,
            len(train),
            n_holdout,
            f"not enough labelled samples ({len(samples)}; need {int(min_holdout / holdout_fraction)})",
        )
        return None, verdict
    challenger = train_challenger(champion, train, epochs=epochs)
    champ_acc, chall_acc = accuracy(champion, holdout), accuracy(challenger, holdout)
    promote = chall_acc >= champ_acc + min_gain
    reason = (
        f"challenger {chall_acc:.3f} vs champion {champ_acc:.3f} on {n_holdout} held-out samples: "
        + ("promote" if promote else f"keep champion (needs +{min_gain:.2f})")
    )
    return challenger, GateVerdict(promote, champ_acc, chall_acc, len(train), n_holdout, reason)
