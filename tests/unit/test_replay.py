"""``driftline replay``: recorded traffic through the detectors offline."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from contracts.events import InferenceEvent
from driftline.cli import app
from driftline.replay import ReplayReport, events_from_jsonl, replay


def _rows(n=6000, shift_at=4000, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = rng.normal(0, 1, 3)
        if i >= shift_at:
            x[0] += 2.0
        rows.append(
            {
                "event_time": 1.7e9 + i,
                "a": x[0],
                "b": x[1],
                "c": x[2],
                "prediction": int(x[1] > 0),
                "label": int(x[1] > 0),
            }
        )
    return rows


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_shift_in_a_csv_is_found_after_it_happened(tmp_path):
    path = tmp_path / "traffic.csv"
    _write_csv(path, _rows())
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", str(path), "--model", "m", "--report", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["inferences"] == 6000 and report["labels"] == 6000
    features = [a for a in report["alarms"] if a["signal"] == "feature:a"]
    assert features and all(a["inference"] >= 4000 for a in features), report["alarms"]
    assert "feature:a/" in result.output


def test_parquet_and_jsonl_give_the_same_report_as_csv(tmp_path):
    rows = _rows(3000, 2000)
    _write_csv(tmp_path / "t.csv", rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    with (tmp_path / "t.jsonl").open("w") as f:
        for i, r in enumerate(rows):
            event = InferenceEvent(
                "m",
                "v1",
                f"replay-{i}",
                r["event_time"],
                {"a": r["a"], "b": r["b"], "c": r["c"]},
                r["prediction"],
            )
            f.write(event.to_json().decode() + "\n")
            f.write(
                json.dumps(
                    {
                        "schema_version": 1,
                        "model_id": "m",
                        "request_id": f"replay-{i}",
                        "label": r["label"],
                        "event_time": r["event_time"],
                    }
                )
                + "\n"
            )
    reports = []
    for name in ("t.csv", "t.parquet", "t.jsonl"):
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(
            app, ["replay", str(tmp_path / name), "--model", "m", "--report", str(out)]
        )
        assert result.exit_code == 0, result.output
        reports.append(json.loads(out.read_text()))
    signals = [sorted((a["signal"], a["inference"]) for a in r["alarms"]) for r in reports]
    assert signals[0] == signals[1] == signals[2]
    assert reports[0]["metrics"]["accuracy"] == 1.0


def test_bad_lines_are_counted_and_bad_input_exits_2(tmp_path):
    report = ReplayReport("m")
    events = list(events_from_jsonl([b'{"nope": 1}', b"", b"[1,2]"], report))
    assert events == [] and sum(report.rejected.values()) == 2
    (tmp_path / "x.txt").write_text("hello")
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and "unknown file type" in result.output
    result = CliRunner().invoke(app, ["replay", "no-such-file"])
    assert result.exit_code == 2


def test_only_the_chosen_model_is_replayed():
    events = [
        InferenceEvent(m, "v1", f"r{i}", 1.0 + i, {"x": 1.0}, 1)
        for i, m in enumerate(["a", "b", "a"])
    ]
    report = replay(events, "a")
    assert report.inferences == 2 and report.rejected["other_model"] == 1
