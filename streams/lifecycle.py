"""The alarm lifecycle of one model: open, repeat, resolve; and incidents (pure, no I/O).

An :class:`AlarmBook` sits between a model's detectors and the alarms topic:

- a detection on a dedup key (model + signal + detector) with no open alarm **opens** one, which
  is published;
- further detections on that key while it is open are **repeats**: counted, not published
  (a pager would otherwise ring again for the same problem);
- an open alarm **resolves** once its signal has raised nothing for ``resolve_after_s`` of the
  model's event time *and* the signal is back: for a CUSUM, the reference it learnt after the
  alarm lies within its smallest watched shift of the baseline the alarm was raised against.
  A lasting shift therefore stays open (the detector adapted to it, the model did not get
  better); a blip resolves;
- alarms of one model opened within ``incident_window_s`` of an open incident join it:
  simultaneous alarms on twenty features are one incident, paged once.

>>> from contracts.alarms import Alarm
>>> def alarm(name, t):
...     return Alarm("m", "v1", "feature", name, "cusum", 2.0, 1.0, {}, "warning", t, 1)
>>> book = AlarmBook(resolve_after_s=600, incident_window_s=60)
>>> first, second = book.open(alarm("x", 100.0)), book.open(alarm("y", 130.0))
>>> first.incident == second.incident, book.open(alarm("x", 150.0))   # a repeat of x: None
(True, None)
>>> [r.dedup_key for r in book.resolve(now=700.0, recovered=lambda a: True)]
[]
>>> [(r.dedup_key, r.incident_open) for r in book.resolve(now=800.0, recovered=lambda a: True)]
[('m/feature:x/cusum', 1), ('m/feature:y/cusum', 0)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from contracts.alarms import Alarm, Resolution, incident_id


@dataclasses.dataclass(slots=True)
class OpenAlarm:
    alarm: Alarm  # as published when it opened (with its incident)
    last_raised: float  # event time of the latest detection on its key
    repeats: int = 0


class AlarmBook:
    def __init__(self, resolve_after_s: float = 600.0, incident_window_s: float = 300.0) -> None:
        if resolve_after_s <= 0 or incident_window_s < 0:
            raise ValueError("need resolve_after_s > 0 and incident_window_s >= 0")
        self.resolve_after_s = resolve_after_s
        self.incident_window_s = incident_window_s
        self.open_alarms: dict[str, OpenAlarm] = {}
        self.repeats = 0  # detections held back as repeats, all keys, ever

    def open(self, alarm: Alarm) -> Alarm | None:
        """The alarm to publish for this detection (with its incident), or None for a repeat."""
        current = self.open_alarms.get(alarm.dedup_key)
        if current is not None:
            current.repeats += 1
            current.last_raised = max(current.last_raised, alarm.event_time)
            self.repeats += 1
            return None
        incident = self._incident_near(alarm.event_time) or incident_id(alarm)
        opened = dataclasses.replace(alarm, incident=incident)
        self.open_alarms[alarm.dedup_key] = OpenAlarm(opened, alarm.event_time)
        return opened

    def _incident_near(self, t: float) -> str | None:
        """The newest open incident opened within the window before ``t``, if any."""
        near = [
            o.alarm
            for o in self.open_alarms.values()
            if 0 <= t - o.alarm.event_time <= self.incident_window_s
        ]
        return max(near, key=lambda a: a.event_time).incident if near else None

    def resolve(self, now: float, recovered: Callable[[Alarm], bool | str]) -> list[Resolution]:
        """Close every open alarm quiet for ``resolve_after_s`` (event time) whose signal
        ``recovered`` says is back to normal (True), or gone for the reason it gives (a
        string, e.g. its model version no longer serves)."""
        done = []
        for key, entry in list(self.open_alarms.items()):
            if now - entry.last_raised < self.resolve_after_s:
                continue
            back = recovered(entry.alarm)
            if not back:
                continue
            del self.open_alarms[key]
            quiet = now - entry.last_raised
            reason = back if isinstance(back, str) else "back to its baseline"
            done.append(
                Resolution(entry.alarm, now, entry.repeats, f"quiet for {quiet:.0f}s: {reason}")
            )
        # each resolution says how many of its incident's alarms stay open after it, counting
        # the ones resolved later in this pass: exactly one (the last) ends the incident
        still_open = [o.alarm.incident for o in self.open_alarms.values()]
        return [
            dataclasses.replace(
                r,
                incident_open=still_open.count(r.alarm.incident)
                + sum(later.alarm.incident == r.alarm.incident for later in done[i + 1 :]),
            )
            for i, r in enumerate(done)
        ]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The open alarms as JSON-ready data, by dedup key (what Redis shows operators)."""
        return {key: _entry(o) for key, o in self.open_alarms.items()}

    # -- checkpoints ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "open": [_entry(o) for o in self.open_alarms.values()]}

    def restore(self, state: dict[str, Any]) -> None:
        self.repeats = int(state.get("repeats", 0))
        self.open_alarms = {}
        for item in state.get("open", []):
            alarm = Alarm(**item["alarm"])
            self.open_alarms[alarm.dedup_key] = OpenAlarm(
                alarm, float(item["last_raised"]), int(item["repeats"])
            )


def _entry(entry: OpenAlarm) -> dict[str, Any]:
    return {
        "alarm": dataclasses.asdict(entry.alarm),
        "last_raised": entry.last_raised,
        "repeats": entry.repeats,
    }
