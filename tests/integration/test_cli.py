"""`driftline models ...` as an operator runs it, against the real Redis and Kafka."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from tests.unit.learner_fixtures import classification, torch_model


def _cli(settings, blob_dir, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **settings.to_env(),
        "DRIFTLINE_BLOB_STORE": str(blob_dir),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_register_list_show_promote_rollback(settings, tmp_path):
    blobs = tmp_path / "blobs"
    first, second = torch_model(seed=1), torch_model(seed=2)
    first.fit(classification(300))
    (tmp_path / "v1.safetensors").write_bytes(first.to_bytes())
    (tmp_path / "v2.safetensors").write_bytes(second.to_bytes())

    out = _cli(settings, blobs, "models", "list")
    assert out.returncode == 1 and "driftline models register" in out.stderr

    out = _cli(settings, blobs, "models", "register", "cli-m", str(tmp_path / "v1.safetensors"))
    assert out.returncode == 0, out.stderr
    assert "registered cli-m v1" in out.stdout and "champion is now v1" in out.stdout
    out = _cli(
        settings,
        blobs,
        "models",
        "register",
        "cli-m",
        str(tmp_path / "v2.safetensors"),
        "--no-champion",
    )
    assert out.returncode == 0 and "registered cli-m v2" in out.stdout

    listing = _cli(settings, blobs, "models", "list")
    assert listing.returncode == 0 and "cli-m" in listing.stdout

    promoted = _cli(settings, blobs, "models", "promote", "cli-m", "v2")
    assert promoted.returncode == 0, promoted.stderr
    assert "champion is now v2 (generation 2)" in promoted.stdout
    assert "announced on" in promoted.stdout

    back = _cli(settings, blobs, "models", "rollback", "cli-m")
    assert back.returncode == 0 and "champion is now v1 (generation 3)" in back.stdout

    shown = _cli(settings, blobs, "models", "show", "cli-m", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["aliases"]["champion"] == first.digest()
    assert [v["version"] for v in doc["versions"]] == ["v1", "v2"]
    assert [h["action"] for h in doc["history"]] == [
        "rolled_back",
        "promoted",
        "registered",
        "promoted",
        "registered",
    ]
    table = _cli(settings, blobs, "models", "show", "cli-m")
    assert "champion" in table.stdout and "previous" in table.stdout


def test_bad_input_gets_a_clear_error_and_a_nonzero_exit(settings, tmp_path):
    blobs = tmp_path / "blobs"
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model")
    out = _cli(settings, blobs, "models", "register", "cli-x", str(bad), "--adapter", "torch")
    assert out.returncode == 1 and "is not a loadable torch model" in out.stderr
    out = _cli(settings, blobs, "models", "register", "cli-x", str(tmp_path / "missing"))
    assert out.returncode == 2 and "cannot read" in out.stderr
    out = _cli(settings, blobs, "models", "rollback", "cli-x")
    assert out.returncode == 1 and "no previous champion" in out.stderr
    out = _cli(settings, blobs, "models", "show", "cli-x")
    assert out.returncode == 1 and "not registered" in out.stderr
    out = _cli(settings, blobs, "models", "frobnicate")
    assert out.returncode == 2


def test_reference_from_csv(settings, tmp_path):
    csv_file = tmp_path / "ref.csv"
    csv_file.write_text("a,b,label\n1.0,2.0,1\n0.5,-1.0,0\n")
    out = _cli(settings, tmp_path / "blobs", "models", "reference", "cli-r", str(csv_file))
    assert out.returncode == 0, out.stderr
    assert "reference sample of 2 rows" in out.stdout


def test_metrics_by_window_as_json(settings, tmp_path):
    import redis

    from contracts.redis_keys import RedisKeys

    keys = RedisKeys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    client.hset(keys.metrics("cli-metrics", "1h"), mapping={"events": 42, "accuracy": 0.9})
    out = _cli(settings, tmp_path, "metrics", "cli-metrics", "--window", "1h", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"1h": {"events": 42, "accuracy": 0.9}}  # typed
    out = _cli(settings, tmp_path, "metrics", "cli-metrics", "--window", "1m")
    assert out.returncode == 1 and "no metrics" in out.stderr
    out = _cli(settings, tmp_path, "metrics", "cli-metrics", "--window", "1w")
    assert out.returncode == 2 and "choose 1m, 1h or 1d" in out.stderr
    features = {
        "age": {
            "n": 3,
            "mean": 41.5,
            "std": 2.25,
            "min": 39.0,
            "max": 44.0,
            "p05": 39.2,
            "p25": 40.0,
            "p50": 41.0,
            "p75": 43.0,
            "p95": 43.8,
        }
    }
    client.hset(keys.metrics("cli-metrics", "1h"), "feature_stats", json.dumps(features))
    out = _cli(settings, tmp_path, "metrics", "cli-metrics", "--window", "1h")
    assert out.returncode == 0, out.stderr
    assert "cli-metrics [1h] features" in out.stdout
    row = next(line for line in out.stdout.splitlines() if "age" in line)
    from contracts.metrics import read_metrics

    assert read_metrics(settings, "cli-metrics", ["1h"])["1h"]["feature_stats"] == features
    assert [c.strip() for c in row.strip("│ ").split("│")] == [
        "age",
        "3",
        "41.5",
        "2.25",
        "39",
        "39.2",
        "41",
        "43.8",
        "44",
    ]


def test_reference_set_stores_a_profile_the_worker_reads(settings, tmp_path):
    import asyncio

    import redis

    from contracts.redis_keys import RedisKeys
    from streams.store import RedisStore

    csv = tmp_path / "train.csv"
    csv.write_text(
        "age,tenure,label\n"
        + "".join(f"{30 + i % 9},{i % 13},{'yes' if i % 2 else 'no'}\n" for i in range(2500))
    )
    out = _cli(settings, tmp_path, "reference", "set", "prof-m", str(csv))
    assert out.returncode == 2 and "--drop" in out.stderr  # the label column is not a feature
    out = _cli(settings, tmp_path, "reference", "set", "prof-m", str(csv), "--drop", "label")
    assert out.returncode == 0, out.stderr
    assert "2500 rows" in out.stdout
    keys = RedisKeys(settings.key_prefix)
    assert redis.Redis.from_url(settings.redis_url).exists(keys.reference_profile("prof-m"))

    async def read():
        store = RedisStore(settings.redis_url, keys)
        try:
            return await store.load_profile("prof-m")
        finally:
            await store.close()

    profile = asyncio.run(read())
    assert profile.features == ["age", "tenure"] and len(profile.rows) == 2500


def test_a_bad_config_file_stops_the_worker_and_names_the_key(settings, tmp_path):
    config = tmp_path / "driftline.toml"
    configured = dataclasses.replace(settings, config_file=str(config))
    config.write_text("[models.churn]\nlatancy_slo_ms = 100\n")
    out = _cli(configured, tmp_path, "worker")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    said = " ".join(out.stderr.split())  # rich wraps long lines
    assert "[models.churn] unknown key 'latancy_slo_ms'" in said, said
    config.write_text("[policy.default]\nmin_labeled = 40\n")
    out = _cli(configured, tmp_path, "learner")
    assert out.returncode == 2 and "min_labeled" in out.stderr, out.stderr[-2000:]
