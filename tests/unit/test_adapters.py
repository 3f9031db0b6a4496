"""Conformance suite: every adapter, every task, one set of promises."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from learners.adapters import EnsembleAdapter, InvalidModel, LinearAdapter, adapter_from_bytes
from learners.blobstore import LocalBlobStore, digest_of, fetch_verified
from learners.scoring import score
from tests.unit.learner_fixtures import (
    classification,
    regression,
    river_model,
    torch_model,
)


def _trained(kind: str):
    if kind == "linear":
        model, data = LinearAdapter.untrained(["a", "b", "c"]), classification(600)
    elif kind == "torch-binary":
        model, data = torch_model("binary"), classification(600)
    elif kind == "torch-multiclass":
        model, data = torch_model("multiclass", classes=3), classification(900, classes=3)
    elif kind == "torch-regression":
        model, data = torch_model("regression"), regression(600)
    elif kind == "river-binary":
        model, data = river_model("binary"), classification(600)
    elif kind == "river-multiclass":
        model, data = river_model("multiclass", 3), classification(900, classes=3)
    elif kind == "river-regression":
        model, data = river_model("regression"), regression(600)
    elif kind == "ensemble":
        a, b = _trained("linear")[0], _trained("torch-binary")[0]
        model, data = EnsembleAdapter([a, b], "stacking"), classification(600, seed=5)
    else:
        raise AssertionError(kind)
    model.fit(data)
    return model, data


KINDS = [
    "linear",
    "torch-binary",
    "torch-multiclass",
    "torch-regression",
    "river-binary",
    "river-multiclass",
    "river-regression",
    "ensemble",
]


@pytest.fixture(scope="module", params=KINDS)
def trained(request):
    return _trained(request.param)


def test_it_learns(trained):
    model, _data = trained
    if model.task == "regression":
        # mean absolute error far below the target's spread (standard deviation ~3.6)
        assert score(model, regression(400, seed=9)) > -1.0
    else:
        fresh = classification(400, seed=9, classes=len(model.classes))
        assert score(model, fresh) > (0.8 if len(model.classes) == 2 else 0.7)


def test_round_trip_is_exact_and_deterministic(trained):
    model, data = trained
    blob = model.to_bytes()
    copy = adapter_from_bytes(model.kind, blob)
    assert copy.to_bytes() == blob
    assert copy.digest() == model.digest() == digest_of(blob)
    X = model.prepare(data)[:50]
    if model.task == "regression":
        np.testing.assert_allclose(copy.predict(X), model.predict(X), rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(copy.predict_proba(X), model.predict_proba(X), atol=1e-6)
        assert list(copy.predict(X)) == list(model.predict(X))


def test_shapes_and_description(trained):
    model, data = trained
    X = model.prepare(data)[:7]
    prediction = model.predict(X)
    assert prediction.shape == (7,)
    description = model.describe()
    assert description.task == model.task and description.n_parameters > 0
    if model.task == "regression":
        assert prediction.dtype == np.float64
        with pytest.raises(InvalidModel):
            model.predict_proba(X)
    else:
        proba = model.predict_proba(X)
        assert proba.shape == (7, len(model.classes))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert set(prediction) <= set(model.classes)


def test_predict_one_handles_a_missing_feature(trained):
    model, _ = trained
    prediction, confidence = model.predict_one({"a": 0.5, "b": 5.0})  # "c" missing
    if model.task == "regression":
        assert np.isfinite(prediction) and confidence is None
    else:
        assert prediction in model.classes and 0.0 <= confidence <= 1.0


def test_clone_is_independent():
    model, _data = _trained("torch-binary")
    copy = model.clone()
    copy.fit(classification(300, seed=3, concept="b"))
    assert copy.digest() != model.digest()
    assert adapter_from_bytes("torch", model.to_bytes()).digest() == model.digest()


class _Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_river_blob_that_calls_arbitrary_code_is_refused():
    model = river_model()
    header, _, _ = model.to_bytes().partition(b"\n\x80")  # a genuine header ...
    blob = header + b"\n" + pickle.dumps(_Boom(), protocol=5)  # ... over a hostile payload
    with pytest.raises(InvalidModel, match=r"builtins\.print, which is not allowed"):
        adapter_from_bytes("river", blob)


def test_a_torch_factory_outside_the_allow_list_is_refused(monkeypatch):
    model = torch_model()
    blob = model.to_bytes().replace(b"learners.zoo:mlp", b"os.path:join0000")
    with pytest.raises(InvalidModel):
        adapter_from_bytes("torch", blob)
    monkeypatch.delenv("DRIFTLINE_MODEL_FACTORIES", raising=False)
    from learners.adapters.torch_module import TorchAdapter

    with pytest.raises(InvalidModel, match="DRIFTLINE_MODEL_FACTORIES"):
        TorchAdapter.build("subprocess:run", {}, "binary", ["0", "1"], ["a"])


def test_a_tampered_blob_is_refused(tmp_path):
    model = torch_model()
    store = LocalBlobStore(tmp_path)
    uri = store.put(model.to_bytes())
    digest = model.digest()
    assert fetch_verified(store, uri, digest) == model.to_bytes()
    path = tmp_path / "sha256" / digest.removeprefix("sha256:")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModel, match="digest"):
        fetch_verified(store, uri, digest)


def test_blob_store_refuses_paths_outside_its_root(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidModel, match="outside"):
        fetch_verified(store, "file:///etc/passwd", "sha256:" + "0" * 64)


def test_torch_preprocessing_travels_with_the_weights():
    """Raw (unscaled) features in, the model's own normaliser inside the blob."""
    model, data = _trained("torch-binary")
    copy = adapter_from_bytes("torch", model.to_bytes())
    assert float(copy.module.norm.mean[1]) == pytest.approx(5.0, abs=0.3)
    assert score(copy, data) > 0.8
