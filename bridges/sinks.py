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


def alertmanager_sink(
    url: str, receiver: str = "driftline", external_url: str = "", runbook_url: str = ""
) -> Sink:
    def build(notices: list[Notice]) -> list[Request]:
        bodies = alertmanager_payloads(
            notices,
            receiver,
            external_url=external_url,
            generator_url=external_url,
            runbook_url=runbook_url,
        )
        by_model = {b["groupLabels"]["model"]: b for b in bodies}
        return [([n for n in notices if n.model == m], b) for m, b in by_model.items()]

    return Sink("alertmanager", url, build)


def pagerduty_sink(routing_key: str, url: str = EVENTS_URL, client_url: str = "") -> Sink:
    if not routing_key.strip():
        raise ValueError("DRIFTLINE_PAGERDUTY_ROUTING_KEY is empty")
    return Sink("pagerduty", url, one_each(lambda n: pagerduty_event(n, routing_key, client_url)))


def webhook_sink(url: str) -> Sink:
    return Sink(
        "webhook", url, one_each(cloudevent_body), "application/cloudevents+json; charset=utf-8"
    )


def slack_sink(url: str) -> Sink:
    return Sink("slack", url, one_each(slack_message))


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # the value itself may be a secret: name the variable, not the value
        raise ValueError(f"{name} must be an http(s) URL")
    return url


def sinks_from_env(env: Mapping[str, str]) -> list[Sink]:
    dashboard = env.get("DRIFTLINE_DASHBOARD_URL", "")
    runbook = env.get("DRIFTLINE_RUNBOOK_URL", "")
    sinks = []
    if url := env.get("DRIFTLINE_ALERTMANAGER_WEBHOOK_URL"):
        receiver = env.get("DRIFTLINE_ALERTMANAGER_RECEIVER", "driftline")
        url = _check_url("DRIFTLINE_ALERTMANAGER_WEBHOOK_URL", url)
        sinks.append(alertmanager_sink(url, receiver, dashboard, runbook))
    if key := env.get("DRIFTLINE_PAGERDUTY_ROUTING_KEY"):
        url = _check_url("DRIFTLINE_PAGERDUTY_URL", env.get("DRIFTLINE_PAGERDUTY_URL", EVENTS_URL))
        sinks.append(pagerduty_sink(key, url, dashboard))
    if url := env.get("DRIFTLINE_WEBHOOK_URL"):
        sinks.append(webhook_sink(_check_url("DRIFTLINE_WEBHOOK_URL", url)))
    if url := env.get("DRIFTLINE_SLACK_WEBHOOK_URL"):
        sinks.append(slack_sink(_check_url("DRIFTLINE_SLACK_WEBHOOK_URL", url)))
    return sinks
