"""A sink is one receiver: a name, where to POST, and how to turn notices into bodies.

Sinks come from the environment (:func:`sinks_from_env`); any subset may be configured:

====================================  =========================================================
``DRIFTLINE_ALERTMANAGER_WEBHOOK_URL`` Alertmanager-style webhook receiver (payload version 4)
``DRIFTLINE_ALERTMANAGER_RECEIVER``    the ``receiver`` name in the payload (``driftline``)
``DRIFTLINE_PAGERDUTY_ROUTING_KEY``    PagerDuty Events API v2 integration key (a secret)
``DRIFTLINE_PAGERDUTY_URL``            the Events API endpoint (PagerDuty's own by default)
``DRIFTLINE_WEBHOOK_URL``              any JSON receiver: gets the CloudEvent itself
``DRIFTLINE_SLACK_WEBHOOK_URL``        a Slack incoming webhook (its path is a secret)
``DRIFTLINE_DASHBOARD_URL``            links back from pages (``externalURL``, ``client_url``)
``DRIFTLINE_RUNBOOK_URL``              each alert's ``runbook_url`` annotation (+ ``#<kind>``)
``DRIFTLINE_BRIDGE_PAGE_PER``          ``alarm`` (default) or ``incident``: one page per incident
====================================  =========================================================

A sink's ``repr`` names its kind and host only, never the path or a key.

>>> sinks = sinks_from_env({"DRIFTLINE_PAGERDUTY_ROUTING_KEY": "k" * 32,
...                         "DRIFTLINE_PAGERDUTY_URL": "http://127.0.0.1:9/v2/enqueue"})
>>> sinks
[Sink(pagerduty -> 127.0.0.1:9)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridges.alertmanager import alertmanager_payloads
from bridges.notice import Notice
from bridges.pagerduty import EVENTS_URL, pagerduty_event
from bridges.webhooks import cloudevent_body, slack_message

#: One POST: the notices it carries and its body.
Request = tuple[list[Notice], Any]


@dataclass(frozen=True)
class Sink:
    name: str
    url: str
    build: Callable[[list[Notice]], list[Request]]
    content_type: str = "application/json"

    def __repr__(self) -> str:  # the URL's path and the bodies may hold secrets
        return f"Sink({self.name} -> {urlsplit(self.url).netloc})"


def one_each(body: Callable[[Notice], Any]) -> Callable[[list[Notice]], list[Request]]:
    return lambda notices: [([n], body(n)) for n in notices]


def per_incident_only(
    build: Callable[[list[Notice]], list[Request]],
) -> Callable[[list[Notice]], list[Request]]:
    """Only what changes an incident: the alarm that opens it and the resolution that ends
    it; the other alarms of the incident are not sent (the worker counts them as grouped)."""
    return lambda notices: build([n for n in notices if n.pages_for_incident()])


def alertmanager_sink(
    url: str,
    receiver: str = "driftline",
    external_url: str = "",
    runbook_url: str = "",
    per_incident: bool = False,
) -> Sink:
    def build(notices: list[Notice]) -> list[Request]:
        bodies = alertmanager_payloads(
            notices,
            receiver,
            external_url=external_url,
            generator_url=external_url,
            runbook_url=runbook_url,
            per_incident=per_incident,
        )
        by_model = {b["groupLabels"]["model"]: b for b in bodies}
        return [([n for n in notices if n.model == m], b) for m, b in by_model.items()]

    return Sink("alertmanager", url, per_incident_only(build) if per_incident else build)


def pagerduty_sink(
    routing_key: str, url: str = EVENTS_URL, client_url: str = "", per_incident: bool = False
) -> Sink:
    if not routing_key.strip():
        raise ValueError("DRIFTLINE_PAGERDUTY_ROUTING_KEY is empty")
    build = one_each(lambda n: pagerduty_event(n, routing_key, client_url, per_incident))
    return Sink("pagerduty", url, per_incident_only(build) if per_incident else build)


def webhook_sink(url: str, per_incident: bool = False) -> Sink:
    build = one_each(cloudevent_body)
    return Sink(
        "webhook",
        url,
        per_incident_only(build) if per_incident else build,
        "application/cloudevents+json; charset=utf-8",
    )


def slack_sink(url: str, per_incident: bool = False) -> Sink:
    build = one_each(slack_message)
    return Sink("slack", url, per_incident_only(build) if per_incident else build)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # the value itself may be a secret: name the variable, not the value
        raise ValueError(f"{name} must be an http(s) URL")
    return url


def sinks_from_env(env: Mapping[str, str]) -> list[Sink]:
    dashboard = env.get("DRIFTLINE_DASHBOARD_URL", "")
    runbook = env.get("DRIFTLINE_RUNBOOK_URL", "")
    page_per = env.get("DRIFTLINE_BRIDGE_PAGE_PER", "alarm")
    if page_per not in ("alarm", "incident"):
        raise ValueError(f"DRIFTLINE_BRIDGE_PAGE_PER is alarm or incident, got {page_per!r}")
    grouped = page_per == "incident"
    sinks = []
    if url := env.get("DRIFTLINE_ALERTMANAGER_WEBHOOK_URL"):
        receiver = env.get("DRIFTLINE_ALERTMANAGER_RECEIVER", "driftline")
        url = _check_url("DRIFTLINE_ALERTMANAGER_WEBHOOK_URL", url)
        sinks.append(alertmanager_sink(url, receiver, dashboard, runbook, grouped))
    if key := env.get("DRIFTLINE_PAGERDUTY_ROUTING_KEY"):
        url = _check_url("DRIFTLINE_PAGERDUTY_URL", env.get("DRIFTLINE_PAGERDUTY_URL", EVENTS_URL))
        sinks.append(pagerduty_sink(key, url, dashboard, grouped))
    if url := env.get("DRIFTLINE_WEBHOOK_URL"):
        sinks.append(webhook_sink(_check_url("DRIFTLINE_WEBHOOK_URL", url), grouped))
    if url := env.get("DRIFTLINE_SLACK_WEBHOOK_URL"):
        sinks.append(slack_sink(_check_url("DRIFTLINE_SLACK_WEBHOOK_URL", url), grouped))
    return sinks
