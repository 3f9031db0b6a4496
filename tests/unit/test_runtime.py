"""MonitorRuntime with in-memory doubles: routing, dead-lettering, reconciliation."""

from __future__ import annotations

import json
from collections import Counter

from contracts.events import InferenceEvent, LabelEvent
from contracts.settings import Settings
from streams import checkpoint_parts
from streams.deadletter import read_headers
from streams.join import StoredPrediction
from streams.runtime import MonitorRuntime, Source


class ListPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict]] = []
        self.placed: list[tuple[int | None, float | None]] = []  # (partition, timestamp) of each

    async def send(self, topic, key, value, headers=None, *, partition=None, timestamp=None):
        self.sent.append((topic, key, value, dict(headers or {})))
        self.placed.append((partition, timestamp))

    async def flush(self):
        self.flushed = len(self.sent)


class ListSink:
    def __init__(self) -> None:
        self.metrics, self.labelled, self.counts = {}, [], Counter()
        self.checkpoints: dict = {}
        self.forgotten: list[str] = []
        self.open_alarms: dict = {}
        self.pending: dict = {}
        self.profiles: dict = {}
        self.series: list = []
        self.model_counts: dict[str, Counter] = {}

    def add_series_point(self, model_id, point):
        self.series.append((model_id, point))

    def add_open_alarms(self, model_id, alarms):
        self.open_alarms[model_id] = json.loads(json.dumps(alarms))

    def add_pending(self, model_id, written, consumed):
        waiting = self.pending.setdefault(model_id, {})
        for stored in written:
            waiting[stored.request_id] = stored.to_bytes()  # as Redis would keep it
        for request_id, _ in consumed:
            waiting.pop(request_id, None)

    async def load_pending(self, model_id, labels):
        waiting = self.pending.get(model_id, {})
        return [
            StoredPrediction.from_bytes(model_id, lab.request_id, waiting[lab.request_id])
            for lab in labels
            if lab.request_id in waiting
        ]

    def add_metrics(self, model_id, windows):
        self.metrics[model_id] = windows

    def add_labelled(self, model_id, sample):
        self.labelled.append(sample)

    def add_model_counts(self, model_id, counts):
        self.model_counts.setdefault(model_id, Counter()).update(counts)

    def add_counts(self, counts, model_id=None):
        self.counts.update(counts)

    def add_checkpoint(self, model_id, checkpoint):
        # as Redis keeps it: the fields of one hash
        self.checkpoints[model_id] = checkpoint_parts.join(checkpoint_parts.split(checkpoint))

    def forget(self, model_id):
        self.forgotten.append(model_id)

    async def load_checkpoint(self, model_id):
        return self.checkpoints.get(model_id)

    async def load_profile(self, model_id):
        return self.profiles.get(model_id)

    async def flush(self, before=None, models=None, final=True):
        if before is not None:
            await before()
        return True


def _runtime():
    publisher, sink = ListPublisher(), ListSink()
    return MonitorRuntime(Settings(topic_prefix="t"), publisher, sink), publisher, sink


async def test_bad_events_are_dead_lettered_with_reason_and_original_bytes():
    runtime, publisher, sink = _runtime()
    good = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1, score=0.5).to_json()
    bad = [b"{oops", b'{"schema_version": 9, "model_id": "m"}', b"[]"]
    await runtime.handle_inference(good, Source("t.inferences", 0, 0))
    for offset, raw in enumerate(bad, start=1):
        await runtime.handle_inference(raw, Source("t.inferences", 0, offset, b"k"))
    await runtime.flush()
    dead = [s for s in publisher.sent if s[0] == "t.deadletter"]
    assert [d[2] for d in dead] == bad
    reasons = [read_headers(d[3])["driftline.reason"] for d in dead]
    assert reasons == ["invalid_json", "unknown_schema_version", "not_an_object"]
    assert read_headers(dead[0][3])["driftline.source.offset"] == "1"
    assert sink.counts["inferences.processed"] + sink.counts["deadletter.total"] == 1 + len(bad)


async def test_an_unexpected_error_is_dead_lettered_not_raised(monkeypatch):
    runtime, publisher, _sink = _runtime()

    def boom(self, event):
        raise RuntimeError("bug in a detector")

    monkeypatch.setattr("streams.monitor.ModelMonitor.observe_inference", boom)
    await runtime.handle_inference(
        InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json(), Source("t.inferences", 0, 7)
    )
    ((topic, _, _, headers),) = publisher.sent
    assert topic == "t.deadletter"
    assert read_headers(headers)["driftline.reason"] == "processing_error"
    assert "bug in a detector" in read_headers(headers)["driftline.detail"]


async def test_labels_join_and_become_samples_and_metrics():
    runtime, _publisher, sink = _runtime()
    for i in range(20):
        event = InferenceEvent("m", "v1", f"r{i}", 100.0 + i, {"x": float(i)}, prediction=i % 2)
        await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, i))
        await runtime.handle_label(
            LabelEvent("m", f"r{i}", 1, 101.0 + i).to_json(), Source("t.labels", 0, i)
        )
    await runtime.flush()
    assert len(sink.labelled) == 20
    assert sink.metrics["m"]["1m"]["accuracy"] == 0.5
    assert sink.metrics["m"]["1h"]["labelled"] == 20


async def test_error_drift_publishes_a_critical_cloudevent():
    runtime, publisher, _sink = _runtime()
    for i in range(4000):
        wrong = i >= 3000 and i % 2 == 0
        event = InferenceEvent("m", "v1", f"r{i}", float(i), {}, prediction=1)
        await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, i))
        label = LabelEvent("m", f"r{i}", 0 if wrong else 1, float(i))
        await runtime.handle_label(label.to_json(), Source("t.labels", 0, i))
    alarms = [s for s in publisher.sent if s[0] == "t.alarms"]
    assert alarms, "a jump from 0% to 50% errors must raise an alarm"
    first = json.loads(alarms[0][2])
    assert first["specversion"] == "1.0" and first["data"]["severity"] == "critical"
    assert first["data"]["dedup_key"] == "m/error:error/cusum@v1"
    assert 3000 < first["data"]["index"] < 3050


async def test_a_restarted_runtime_resumes_detectors_and_skips_redelivered_messages():
    runtime, _publisher, sink = _runtime()
    events = [
        InferenceEvent("m", "v1", f"r{i}", float(i), {"x": (i * 7919) % 13 / 13}, 1, score=0.8)
        for i in range(3000)
    ]
    for i, event in enumerate(events[:2500]):
        await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, i))
    await runtime.flush()
    assert sink.checkpoints["m"]["positions"] == {"t.inferences:0": 2499}

    # A new worker on the same store: Kafka redelivers from an older committed offset.
    restarted = MonitorRuntime(Settings(topic_prefix="t"), ListPublisher(), sink)
    for i in range(2000, 3000):
        await restarted.handle_inference(events[i].to_json(), Source("t.inferences", 0, i))
    assert restarted.counts["inferences.redelivered"] == 500
    assert restarted.counts["inferences.processed"] == 500
    assert restarted.counts["checkpoints.restored"] == 1
    resumed = restarted.monitors["m"].features["x"].detectors["cusum"]

    uninterrupted, _, _ = _runtime()
    for i, event in enumerate(events):
        await uninterrupted.handle_inference(event.to_json(), Source("t.inferences", 0, i))
    expected = uninterrupted.monitors["m"].features["x"].detectors["cusum"]
    assert resumed.n_seen == 3000
    assert resumed.get_state() == expected.get_state()


async def test_an_unusable_checkpoint_is_discarded_not_fatal():
    runtime, _publisher, sink = _runtime()
    sink.checkpoints["m"] = {"version": 999}
    event = InferenceEvent("m", "v1", "r1", 1.0, {"x": 1.0}, 1)
    await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, 0))
    assert runtime.counts["checkpoints.discarded"] == 1
    assert runtime.counts["inferences.processed"] == 1


async def test_operators_set_the_latency_slo_and_low_confidence_in_the_environment(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_LATENCY_SLO_MS", "80")
    monkeypatch.setenv("DRIFTLINE_LOW_CONFIDENCE", "0.7")
    settings = Settings.from_env()
    runtime = MonitorRuntime(settings, ListPublisher(), ListSink())
    monitor = await runtime.monitor("m")
    assert monitor.slo.detectors["latency_slo"].slo_ms == 80.0
    assert monitor.config.low_confidence == 0.7
    assert Settings.from_env(**{}).to_env()["DRIFTLINE_LATENCY_SLO_MS"] == "80.0"


async def test_first_messages_of_a_model_on_two_agents_share_one_monitor():
    """Regression test: the inference and the label agent both awaited the checkpoint load and
    each stored a monitor of its own; the second overwrote the first (and its offset)."""
    import asyncio

    runtime, _, sink = _runtime()
    loads = []

    async def slow_load(model_id):
        loads.append(model_id)
        await asyncio.sleep(0.05)
        return None

    sink.load_checkpoint = slow_load
    inference = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1, score=0.5).to_json()
    label = LabelEvent("m", "r1", 1, 11.0).to_json()
    await asyncio.gather(
        runtime.handle_inference(inference, Source("t.inferences", 0, 7)),
        runtime.handle_label(label, Source("t.labels", 0, 3)),
    )
    assert loads == ["m"]
    monitor = runtime.monitors["m"]
    assert monitor.positions == {"t.inferences:0": 7, "t.labels:0": 3}
    assert monitor.counts["inferences"] == 1 and monitor.counts["labels"] == 1


async def test_a_tombstone_is_dead_lettered_with_a_reason_of_its_own():
    """Regression test: a null value was a processing_error with a traceback in the log."""
    runtime, publisher, _ = _runtime()
    await runtime.handle_inference(None, Source("t.inferences", 0, 5, b"m"))
    await runtime.handle_label(None, Source("t.labels", 1, 6, b"m"))
    dead = [(topic, key, value, read_headers(h)) for topic, key, value, h in publisher.sent]
    assert [d[3]["driftline.reason"] for d in dead] == ["tombstone", "tombstone"]
    assert all(d[0] == "t.deadletter" and d[1] == b"m" and d[2] is None for d in dead)
    assert runtime.counts["deadletter.tombstone"] == 2
    assert "deadletter.processing_error" not in runtime.counts


async def test_an_alarm_raised_again_by_the_same_message_keeps_its_id():
    """Regression test: alarm ids were random, so a replayed alarm looked like a new one."""
    import random

    def run_once():
        runtime, publisher, _ = _runtime()
        rng = random.Random(5)
        return runtime, publisher, rng

    ids = []
    for _ in range(2):  # the same messages, processed by two fresh runtimes (a replay)
        runtime, publisher, rng = run_once()
        for i in range(2600):
            x = rng.gauss(0.0 if i < 2200 else 5.0, 1.0)
            raw = InferenceEvent("m", "v1", f"r{i}", float(i), {"x": x}, 1, score=0.9).to_json()
            await runtime.handle_inference(raw, Source("t.inferences", 0, i))
        alarms = [json.loads(v) for topic, _, v, _ in publisher.sent if topic == "t.alarms"]
        assert alarms, "the shifted feature raised no alarm"
        ids.append([a["id"] for a in alarms])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == len(ids[0])  # distinct alarms, distinct ids


async def test_an_event_stamped_in_milliseconds_is_dead_lettered_not_trusted():
    """Regression test: one event in milliseconds moved the windows' "now" so far ahead that
    later events counted as too late, and expired the whole label join."""
    runtime, publisher, _ = _runtime()
    now = 1_700_000_000.0
    good = InferenceEvent("m", "v1", "r1", now, {"x": 1.0}, 1).to_json()
    millis = InferenceEvent("m", "v1", "r2", now * 1000, {"x": 1.0}, 1).to_json()
    replay = InferenceEvent("m", "v1", "r3", now - 86_400 * 365, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(good, Source("t.inferences", 0, 0, timestamp=now))
    await runtime.handle_inference(millis, Source("t.inferences", 0, 1, timestamp=now))
    await runtime.handle_inference(replay, Source("t.inferences", 0, 2, timestamp=now))
    dead = [read_headers(h) for topic, _, _, h in publisher.sent if topic == "t.deadletter"]
    assert len(dead) == 1 and "not milliseconds" in dead[0]["driftline.detail"]
    assert runtime.counts["inferences.processed"] == 2  # the past is fine (replays, backfills)
    window = runtime.monitors["m"].windows["1h"]
    assert window.newest == now


async def test_a_rebalance_checkpoints_and_forgets_the_models_of_revoked_partitions():
    """Regression test: monitors were never dropped, so a worker that got a partition back
    resumed from stale state and overwrote the newer checkpoint."""
    runtime, _, sink = _runtime()
    for model, partition in (("a", 0), ("b", 1)):
        raw = InferenceEvent(model, "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
        await runtime.handle_inference(raw, Source("t.inferences", partition, 5))
    dropped = await runtime.release({("t.inferences", 0)})
    assert dropped == ["a"] and set(runtime.monitors) == {"b"}
    assert sink.forgotten == ["a"]  # its next checkpoint write is whole, not a delta
    assert sink.checkpoints["a"]["positions"] == {"t.inferences:0": 5}  # saved before dropping
    # getting the partition back resumes from the checkpoint, not from stale memory
    raw = InferenceEvent("a", "v1", "r2", 11.0, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(raw, Source("t.inferences", 0, 6))
    assert runtime.monitors["a"].counts["inferences"] == 2


async def test_an_envelope_is_processed_event_by_event_and_bad_elements_dead_lettered_alone():
    from contracts.envelopes import encode_envelope

    runtime, publisher, _ = _runtime()
    events = [InferenceEvent("m", "v1", f"r{i}", 10.0 + i, {"x": 1.0}, 1) for i in range(5)]
    doc = json.loads(encode_envelope(events))
    doc["events"][2]["features"] = "oops"  # one bad element
    doc["events"][3] = {**doc["events"][3], "model_id": "other"}  # one for another model
    await runtime.handle_inference(json.dumps(doc).encode(), Source("t.inferences", 0, 9, b"m"))
    dead = [(v, read_headers(h)) for t, _, v, h in publisher.sent if t == "t.deadletter"]
    assert [h["driftline.envelope.index"] for _, h in dead] == ["2", "3"]
    assert [h["driftline.reason"] for _, h in dead] == ["wrong_type", "invalid_envelope"]
    assert json.loads(dead[0][0])["features"] == "oops"  # the element itself, not the envelope
    assert runtime.counts["inferences.processed"] == 3
    assert runtime.counts["deadletter.total"] == 2  # 5 produced = 3 processed + 2 dead-lettered
    assert runtime.monitors["m"].counts["inferences"] == 3
    # redelivered as a whole, it is skipped as a whole
    await runtime.handle_inference(json.dumps(doc).encode(), Source("t.inferences", 0, 9, b"m"))
    assert runtime.counts["inferences.redelivered"] == 3


async def test_a_broken_envelope_is_one_dead_letter():
    runtime, publisher, _ = _runtime()
    for raw in (
        b'{"schema_version": 1, "model_id": "m", "events": []}',
        b'{"schema_version": 1, "events": [{}]}',
    ):
        await runtime.handle_inference(raw, Source("t.inferences", 0, 1))
    reasons = [read_headers(h)["driftline.reason"] for t, _, _, h in publisher.sent]
    assert reasons == ["invalid_envelope", "invalid_envelope"]


async def test_idle_models_leave_memory_and_come_back_from_their_checkpoint():
    now = [0.0]
    publisher, sink = ListPublisher(), ListSink()
    settings = Settings(topic_prefix="t", idle_evict_s=60.0)
    runtime = MonitorRuntime(settings, publisher, sink, clock=lambda: now[0])
    event = InferenceEvent("quiet", "v1", "r1", 10.0, {"x": 1.0}, 1, score=0.5)
    await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, 0))
    await runtime.flush()
    assert "quiet" in runtime.monitors  # seen just now
    now[0] = 61.0
    await runtime.flush()
    assert "quiet" not in runtime.monitors and runtime.counts["models.evicted"] == 1
    assert sink.forgotten == ["quiet"]
    later = InferenceEvent("quiet", "v1", "r2", 11.0, {"x": 1.0}, 1, score=0.5)
    await runtime.handle_inference(later.to_json(), Source("t.inferences", 0, 1))
    assert runtime.monitors["quiet"].counts["inferences"] == 2  # resumed, not restarted


async def test_more_models_than_the_cap_evicts_the_least_recently_seen():
    now = [0.0]
    publisher, sink = ListPublisher(), ListSink()
    runtime = MonitorRuntime(
        Settings(topic_prefix="t", max_models=3), publisher, sink, clock=lambda: now[0]
    )
    for offset, model in enumerate(["a", "b", "c", "a", "d"]):
        now[0] += 1
        event = InferenceEvent(model, "v1", f"r{offset}", 10.0 + offset, {"x": 1.0}, 1, score=0.5)
        await runtime.handle_inference(event.to_json(), Source("t.inferences", 0, offset))
    assert sorted(runtime.monitors) == ["a", "c", "d"]  # b was the least recently seen
    assert sink.checkpoints["b"]["counts"]["inferences"] == 1  # and it was checkpointed first


async def test_predictions_waiting_for_labels_survive_a_restart_and_leave_memory():
    publisher, sink = ListPublisher(), ListSink()
    settings = Settings(topic_prefix="t", join_memory=5)
    first = MonitorRuntime(settings, publisher, sink)
    events = [
        InferenceEvent("m", "v1", f"r{i}", 100.0 + i, {"x": float(i)}, 1, score=0.9)
        for i in range(50)
    ]
    await first.handle_inferences(
        [(e.to_json(), Source("t.inferences", 0, i)) for i, e in enumerate(events)]
    )
    assert first.monitors["m"].join.pending[0] == 50  # none leaves memory before the store has it
    await first.flush()
    assert len(sink.pending["m"]) == 50
    one_more = InferenceEvent("m", "v1", "r50", 150.0, {"x": 50.0}, 1, score=0.9)
    await first.handle_inference(one_more.to_json(), Source("t.inferences", 0, 50))
    assert first.monitors["m"].join.pending[0] == 5  # now the older ones wait in the store only

    restarted = MonitorRuntime(settings, publisher, sink)  # a new process: empty memory
    labels = [LabelEvent("m", f"r{i}", 1 if i % 2 else 0, 200.0 + i) for i in range(0, 50, 5)]
    await restarted.handle_labels(
        [(lab.to_json(), Source("t.labels", 0, i)) for i, lab in enumerate(labels)]
    )
    assert restarted.monitors["m"].counts["joined"] == 10
    assert [s["request_id"] for s in sink.labelled] == [lab.request_id for lab in labels]
    assert sink.labelled[1]["features"] == {"x": 5.0}  # the features came back from the store
    await restarted.flush()
    assert len(sink.pending["m"]) == 40  # consumed predictions left the store with the flush


async def test_a_label_finds_its_prediction_when_memory_spills_during_its_lookup():
    """A label batch looks up in the store the predictions that memory no longer holds; while
    that read awaits, the inference agent may store more predictions and spill older ones.  A
    prediction that was in memory when the lookup began must still join its label (it once
    waited for a prediction that was only in the store, forever: labels counted, not joined)."""
    import asyncio

    publisher = ListPublisher()
    sink = SlowLookupSink()
    runtime = MonitorRuntime(Settings(topic_prefix="t", join_memory=5), publisher, sink)

    def inferences(start, stop):
        return [
            (
                InferenceEvent("m", "v1", f"r{i}", 100.0 + i, {"x": float(i)}, 1).to_json(),
                Source("t.inferences", 0, i),
            )
            for i in range(start, stop)
        ]

    await runtime.handle_inferences(inferences(0, 20))
    await runtime.flush()  # r0..r19 in the store
    await runtime.handle_inference(*inferences(20, 21)[0])  # r15..r20 in memory now
    assert runtime.monitors["m"].join.pending[0] == 5
    # r0 is in the store only (looked up), r19 in memory (not looked up)
    labels = [LabelEvent("m", rid, 1, 200.0).to_json() for rid in ("r0", "r19")]
    sink.gate = asyncio.Event()
    labelling = asyncio.create_task(
        runtime.handle_labels([(raw, Source("t.labels", 0, i)) for i, raw in enumerate(labels)])
    )
    await asyncio.sleep(0)  # the label batch now awaits its lookup of r0
    assert sink.looked_up == [["r0"]]
    await runtime.flush()  # r20 reaches the store: memory may let it and older ones go
    await runtime.handle_inferences(inferences(21, 40))  # ... and does, for 19 newer ones
    sink.gate.set()
    await labelling
    assert runtime.monitors["m"].counts["joined"] == 2
    assert sorted(s["request_id"] for s in sink.labelled) == ["r0", "r19"]
    assert runtime.monitors["m"].join.pending[1] == 0  # no label is left waiting


class SlowLookupSink(ListSink):
    """A store whose lookups wait for ``gate``: what other agents do meanwhile is the test."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = None
        self.looked_up: list[list[str]] = []

    async def load_pending(self, model_id, labels):
        self.looked_up.append([lab.request_id for lab in labels])
        if self.gate is not None:
            await self.gate.wait()
        return await super().load_pending(model_id, labels)


async def test_oversized_messages_are_dead_lettered_unread_and_the_path_never_fails():
    publisher, sink = ListPublisher(), ListSink()
    runtime = MonitorRuntime(Settings(topic_prefix="t", max_message_bytes=600_000), publisher, sink)
    huge = b'{"schema_version": 1, "pad": "' + b"x" * 700_000 + b'"}'
    await runtime.handle_inference(huge, Source("t.inferences", 0, 0, b"m"))
    topic, _, value, headers = publisher.sent[-1]
    assert topic == "t.deadletter" and headers["driftline.reason"] == b"too_large"
    assert value is None and headers["driftline.value_omitted"] == str(len(huge)).encode()
    assert headers["driftline.source.offset"] == b"0"

    class Refusing(ListPublisher):
        async def send(self, topic, key, value, headers=None, **placement):
            if value is not None and len(value) > 100:
                raise RuntimeError("MessageSizeTooLargeError")
            await super().send(topic, key, value, headers)

    refusing = Refusing()
    runtime = MonitorRuntime(Settings(topic_prefix="t"), refusing, ListSink())
    bad = b'{"schema_version": 1, "model_id": "m", "oops": "' + b"y" * 200 + b'"}'
    await runtime.handle_inference(bad, Source("t.inferences", 0, 1, b"m"))
    ((_, _, value, headers),) = refusing.sent
    assert value is None and headers["driftline.reason"] == b"missing_field"
    assert runtime.counts["deadletter.total"] == 1


# -- partitioner independence (streams.routing) -------------------------------------------------
def _routed_runtime(partitions: int = 4):
    runtime, publisher, sink = _runtime()

    async def count(topic):
        return partitions

    runtime.partition_count = count
    return runtime, publisher, sink


async def test_a_message_off_its_owner_partition_is_forwarded_there_unchanged():
    from streams.routing import ORIGIN_HEADER, owner_partition

    runtime, publisher, _ = _routed_runtime()
    owner = owner_partition("m", 4)
    stray = (owner + 1) % 4  # where a CRC32 (librdkafka) producer might have put it
    raw = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(raw, Source("t.inferences", stray, 41, b"m", 10.5))
    ((topic, key, value, headers),) = publisher.sent
    assert (topic, key, value) == ("t.inferences", b"m", raw)
    assert publisher.placed == [(owner, 10.5)]  # the broker timestamp travels too
    assert headers[ORIGIN_HEADER] == f"t.inferences:{stray}:41".encode()
    assert runtime.counts["inferences.forwarded"] == 1
    assert runtime.counts["inferences.processed"] == 0 and "m" not in runtime.monitors
    # one on its owner partition is processed where it is
    await runtime.handle_inference(raw, Source("t.inferences", owner, 7, b"m"))
    assert runtime.counts["inferences.processed"] == 1 and len(publisher.sent) == 1


async def test_a_forwarded_copy_is_applied_once_under_its_origin_and_never_forwarded_again():
    from streams.routing import owner_partition

    runtime, publisher, _ = _routed_runtime()
    owner = owner_partition("m", 4)
    stray = (owner + 1) % 4
    raw = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
    origin = ("t.inferences", stray, 41)
    # the copy, and a second copy of it (the forwarder crashed before committing offset 41)
    await runtime.handle_inference(raw, Source("t.inferences", owner, 100, b"m", origin=origin))
    await runtime.handle_inference(raw, Source("t.inferences", owner, 101, b"m", origin=origin))
    assert runtime.counts["inferences.processed"] == 1
    assert runtime.counts["inferences.redelivered"] == 1
    assert runtime.monitors["m"].positions == {f"t.inferences:{stray}": 41}
    # a copy that lands off its owner (the topic grew meanwhile) is applied, not bounced again
    await runtime.handle_inference(
        InferenceEvent("m", "v1", "r2", 11.0, {"x": 1.0}, 1).to_json(),
        Source("t.inferences", stray, 9, b"m", origin=("t.inferences", stray, 42)),
    )
    assert runtime.counts["inferences.processed"] == 2 and publisher.sent == []


async def test_a_forwarded_envelope_dead_letters_its_bad_elements_once_at_its_origin():
    from contracts.envelopes import encode_envelope
    from streams.routing import owner_partition

    runtime, publisher, sink = _routed_runtime()
    owner = owner_partition("m", 4)
    stray = (owner + 1) % 4
    events = [InferenceEvent("m", "v1", f"r{i}", 10.0 + i, {"x": 1.0}, 1) for i in range(3)]
    doc = json.loads(encode_envelope(events))
    doc["events"][1]["features"] = "not an object"
    raw = json.dumps(doc).encode()
    await runtime.handle_inference(raw, Source("t.inferences", stray, 3, b"m"))
    dead = [sent for sent in publisher.sent if sent[0] == "t.deadletter"]
    forwarded = [sent for sent in publisher.sent if sent[0] == "t.inferences"]
    assert len(dead) == 1 and len(forwarded) == 1
    copy = Source("t.inferences", owner, 0, b"m", origin=("t.inferences", stray, 3))
    await runtime.handle_inference(forwarded[0][2], copy)
    await runtime.flush()
    assert len([s for s in publisher.sent if s[0] == "t.deadletter"]) == 1  # not twice
    # 3 events produced = 2 processed + 1 dead-lettered
    assert sink.counts["inferences.processed"] == 2 and sink.counts["deadletter.total"] == 1


async def test_a_rebalance_forgets_a_model_read_from_a_revoked_partition_through_copies_only():
    runtime, _, _ = _runtime()
    raw = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
    # every message of m was a forwarded copy: its positions name only the origin partition 2
    await runtime.handle_inference(raw, Source("t.inferences", 1, 0, origin=("t.inferences", 2, 5)))
    assert set(runtime.monitors["m"].positions) == {"t.inferences:2"}
    assert await runtime.release({("t.inferences", 1)}) == ["m"]


async def test_the_producer_is_flushed_before_the_store_writes_what_the_alarms_came_from():
    runtime, publisher, sink = _runtime()
    order = []
    publisher_flush, sink_flush = publisher.flush, sink.flush

    async def flush_producer():
        order.append(("producer", len(publisher.sent)))
        await publisher_flush()

    async def flush_store(before=None, models=None, final=True):
        result = await sink_flush(before, models, final)
        order.append(("store", len(publisher.sent)))
        return result

    publisher.flush, sink.flush = flush_producer, flush_store
    raw = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(b"{oops", Source("t.inferences", 0, 0))  # a dead letter
    await runtime.handle_inference(raw, Source("t.inferences", 0, 1))
    assert await runtime.flush()
    assert order == [("producer", 1), ("store", 1)]


async def test_a_label_that_came_first_survives_a_crash_in_the_checkpoint():
    """Regression test: a label applied before its prediction waited in memory only; after a
    crash its offset was behind the checkpoint (never read again) and the prediction that came
    later found nothing to join (the Redis Cluster test lost 48 of 580 joins this way)."""
    settings = Settings(topic_prefix="t")
    publisher, sink = ListPublisher(), ListSink()
    before = MonitorRuntime(settings, publisher, sink)
    label = LabelEvent("m", "r1", 1, 12.0).to_json()
    await before.handle_inference(  # the model exists; another prediction is waiting
        InferenceEvent("m", "v1", "r0", 10.0, {"x": 1.0}, 1).to_json(), Source("t.inferences", 0, 0)
    )
    await before.handle_label(label, Source("t.labels", 0, 0))  # before its prediction
    assert await before.flush()
    # crash; a new worker resumes from the checkpoint, and Kafka redelivers the label
    after = MonitorRuntime(settings, publisher, sink)
    await after.handle_label(label, Source("t.labels", 0, 0))
    assert after.counts["labels.redelivered"] == 1
    prediction = InferenceEvent("m", "v1", "r1", 11.0, {"x": 1.0}, 1).to_json()
    await after.handle_inference(prediction, Source("t.inferences", 0, 1))
    assert after.monitors["m"].counts["joined"] == 1


async def test_expired_and_duplicate_join_entries_reach_the_model_counters():
    runtime, _, sink = _runtime()
    prediction = InferenceEvent("m", "v1", "r1", 10.0, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(prediction, Source("t.inferences", 0, 0))
    await runtime.handle_inference(prediction, Source("t.inferences", 0, 1))  # sent twice
    await runtime.handle_label(
        LabelEvent("m", "nobody", 1, 11.0).to_json(), Source("t.labels", 0, 0)
    )
    late = InferenceEvent("m", "v1", "r2", 10.0 + 2 * 86_400, {"x": 1.0}, 1).to_json()
    await runtime.handle_inference(late, Source("t.inferences", 0, 2))  # two days on
    assert await runtime.flush()
    counts = sink.model_counts["m"]
    assert counts["join_duplicates"] == 1
    assert counts["predictions_expired"] == 1 and counts["labels_expired"] == 1


async def test_a_batch_of_envelopes_is_observed_in_chunks_with_the_same_outcome(monkeypatch):
    """DRIFTLINE_BATCH_EVENTS: 500 envelopes of 10,000 events would be 5M events decoded at
    once; chunks keep memory bounded and change nothing else."""
    from contracts.envelopes import encode_envelope
    from streams.monitor import ModelMonitor

    def traffic():
        return [
            (
                encode_envelope(
                    [
                        InferenceEvent(m, "v1", f"{m}-{e}-{i}", 10.0 + i, {"x": float(i % 7)}, 1)
                        for i in range(50)
                    ]
                ),
                Source("t.inferences", 0, e * 2 + j),
            )
            for e in range(6)
            for j, m in enumerate(("a", "b"))
        ]

    sizes = []
    real = ModelMonitor.observe_inferences

    def recording(self, events):
        sizes.append(len(events))
        return real(self, events)

    monkeypatch.setattr(ModelMonitor, "observe_inferences", recording)
    whole = MonitorRuntime(Settings(topic_prefix="t"), ListPublisher(), ListSink())
    await whole.handle_inferences(traffic())
    assert sizes == [300, 300]  # one call per model
    sizes.clear()
    chunked = MonitorRuntime(
        Settings(topic_prefix="t", batch_events=120), ListPublisher(), ListSink()
    )
    await chunked.handle_inferences(traffic())
    assert max(sizes) <= 120 and sum(sizes) == 600
    for model in ("a", "b"):
        assert chunked.monitors[model].metrics() == whole.monitors[model].metrics()
        assert chunked.monitors[model].positions == whole.monitors[model].positions


async def test_alarms_and_refusals_in_envelopes_name_the_element_behind_them(monkeypatch):
    """Inside an envelope, an event with an absurd clock is dead-lettered with its index and the
    rest observed; each alarm's id names the envelope and the element whose value raised it;
    an error while observing dead-letters every element of the batch with its own index."""
    import random

    from contracts.alarms import alarm_id, decode_alarm
    from contracts.envelopes import encode_envelope

    runtime, publisher, _ = _runtime()
    rng = random.Random(2)
    now = 1_700_000_000.0
    where: dict[float, str] = {}  # event time -> "topic:partition:offset:element"
    for offset in range(80):
        events = []
        for element in range(40):
            i = offset * 40 + element
            t = now + i if (offset, element) != (70, 5) else now * 1000  # one in milliseconds
            x = rng.gauss(0.0 if i < 2600 else 4.0, 1.0)
            events.append(InferenceEvent("m", "v1", f"r{i}", t, {"x": x}, 1, score=0.9))
            where[t] = f"t.inferences:0:{offset}:{element}"
        source = Source("t.inferences", 0, offset, b"m", timestamp=now + offset * 40 + 40)
        await runtime.handle_inferences([(encode_envelope(events), source)])
    alarms = [v for topic, _, v, _ in publisher.sent if topic == "t.alarms"]
    assert alarms, "the shifted feature raised no alarm"
    for raw in alarms:
        alarm = decode_alarm(raw)
        assert json.loads(raw)["id"] == alarm_id(alarm, where[alarm.event_time])
    dead = [read_headers(h) for t, _, _, h in publisher.sent if t == "t.deadletter"]
    found = [(d["driftline.source.offset"], d["driftline.envelope.index"]) for d in dead]
    assert found == [("70", "5")]
    assert runtime.counts["inferences.processed"] == 80 * 40 - 1

    def boom(monitor, events):
        raise RuntimeError("bug in a detector")

    monkeypatch.setattr("streams.monitor.ModelMonitor.observe_inferences", boom)
    two = [InferenceEvent("m", "v1", f"s{i}", now + 4000 + i, {"x": 0.0}, 1) for i in range(2)]
    source = Source("t.inferences", 0, 80, b"m", timestamp=now + 5000)
    await runtime.handle_inferences([(encode_envelope(two), source)])
    dead = [read_headers(h) for t, _, _, h in publisher.sent if t == "t.deadletter"][1:]
    assert [(d["driftline.reason"], d["driftline.envelope.index"]) for d in dead] == [
        ("processing_error", "0"),
        ("processing_error", "1"),
    ]


class GroupSink(ListSink):
    """Records each flush's models and the global counts handed for it; can fail a flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[tuple[set, bool, dict]] = []
        self.handed: dict = {}  # model (None: no model's) -> counts, as the store keeps them
        self.fail_at: int | None = None
        self.during: list = []  # coroutines run inside the next flush (events arriving)

    def add_counts(self, counts, model_id=None):
        self.handed.setdefault(model_id, Counter()).update(counts)

    async def flush(self, before=None, models=None, final=True):
        while self.during:
            await self.during.pop(0)
        owners = [*models, *([None] if final else [])]
        if self.fail_at == len(self.flushes):  # the store keeps them for the next try
            self.fail_at = None
            self.flushes.append((set(models), final, {}))
            return False
        written = Counter()
        for owner in owners:
            written.update(self.handed.pop(owner, Counter()))
        self.flushes.append((set(models), final, dict(written)))
        self.counts.update(written)
        return await super().flush(before, models, final)


async def test_changed_models_are_written_in_groups_each_with_its_own_counts(monkeypatch):
    """A flush writes its changed models in groups (FLUSH_MODELS); each model's global counts
    go with its checkpoint, also those of events that arrived while an earlier group was being
    written; a failed group leaves it and the later ones for the next flush."""
    import streams.runtime as runtime_module

    monkeypatch.setattr(runtime_module, "FLUSH_MODELS", 1)
    publisher, sink = ListPublisher(), GroupSink()
    runtime = MonitorRuntime(Settings(topic_prefix="t"), publisher, sink)
    offsets = iter(range(100))

    def event(model):
        raw = InferenceEvent(model, "v1", f"r{next(offsets)}", 10.0, {"x": 1.0}, 1).to_json()
        return runtime.handle_inference(raw, Source("t.inferences", 0, next(offsets)))

    for model in ("a", "b", "c"):
        await event(model)
    await runtime.handle_inference(b"{oops", Source("t.inferences", 0, 999))  # no model's
    sink.during = [event("c")]  # arrives while the first group is written
    sink.fail_at = 1  # the second group fails
    assert not await runtime.flush()
    (_, final1, counts1), (second, _, _) = sink.flushes
    assert not final1 and counts1 == {"inferences.processed": 1}  # the first model's alone
    assert runtime._dirty >= second  # the failed group waits for the next flush
    assert await runtime.flush()
    assert sink.flushes[-1][1]  # the last group carries the counts no model owns
    assert sink.counts["inferences.processed"] == 4 and sink.counts["deadletter.total"] == 1
    c = sink.checkpoints["c"]
    assert c["counts"]["inferences"] == 2  # its checkpoint covers the event that came mid-flush
