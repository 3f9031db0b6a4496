"""The demo's on-call side: a local Alertmanager-style receiver, a PagerDuty-style receiver and
the paging bridge delivering to them, each page printed as it arrives; and the dashboard.

Receivers check every body against the vendor's documented fields
(:mod:`driftline.vendor_schemas`), so the demo shows exactly what a real receiver would get.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bridges.sinks import alertmanager_sink, pagerduty_sink
from bridges.worker import BridgeConfig, BridgeWorker
from contracts.settings import Settings
from driftline.receivers import Receiver
from driftline.vendor_schemas import ALERTMANAGER_V4, PAGERDUTY_V2


class LocalPaging:
    """``async with LocalPaging(settings, say, models) as paging:`` pages are printed; after it,
    ``paging.pages`` counts them by receiver and action."""

    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None],
        models: set[str],
        stamp: Callable[[], str],
        dashboard_port: int = 8050,
    ) -> None:
        self.settings, self.say, self.models, self.stamp = settings, say, models, stamp
        self.pages: Counter[str] = Counter()
        self.routing_key = secrets.token_hex(16)  # what PagerDuty calls an integration key
        self.dashboard_port = dashboard_port
        self.dashboard_url = ""
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def _alertmanager(self, body: dict[str, Any]) -> None:
        for alert in body["alerts"]:
            labels = alert["labels"]
            if labels["model"] not in self.models:
                continue
            self.pages[f"alertmanager.{alert['status']}"] += 1
            self.say(
                f"{self.stamp()} >> PAGE alertmanager receiver '{body['receiver']}': "
                f"{alert['status'].upper()} {labels['model']} {labels['signal_kind']}:"
                f"{labels['signal']} ({labels['severity']}, fingerprint {alert['fingerprint']})"
            )

    def _pagerduty(self, body: dict[str, Any]) -> None:
        model = body["dedup_key"].split("/", 1)[0]
        if model not in self.models:
            return
        self.pages[f"pagerduty.{body['event_action']}"] += 1
        summary = body.get("payload", {}).get("summary", "")
        self.say(
            f"{self.stamp()} >> PAGE pagerduty events v2: {body['event_action'].upper()} "
            f"dedup_key={body['dedup_key']} {summary}"
        )

    async def __aenter__(self) -> LocalPaging:
        am = await self._stack.enter_async_context(
            Receiver("alertmanager", ALERTMANAGER_V4, path="/alerts", on_body=self._alertmanager)
        )
        pd = await self._stack.enter_async_context(
            Receiver(
                "pagerduty",
                PAGERDUTY_V2,
                path="/v2/enqueue",
                secret=self.routing_key,
                on_body=self._pagerduty,
            )
        )
        self.dashboard_url = await self._start_dashboard()
        sinks = [
            alertmanager_sink(am.url, "oncall-ml", external_url=self.dashboard_url),
            pagerduty_sink(self.routing_key, pd.url, client_url=self.dashboard_url),
        ]
        bridge = BridgeWorker(
            self.settings,
            sinks,
            BridgeConfig(start_at="latest"),
            group_id=f"{self.settings.app_id}-bridge-{secrets.token_hex(3)}",
        )
        self._task = asyncio.create_task(bridge.run(self._stop))
        await asyncio.wait_for(bridge.ready.wait(), 60)
        self.say(f"  paging bridge -> Alertmanager-style receiver {am.url}")
        self.say(f"                -> PagerDuty-style receiver {pd.url} (Events API v2)")
        if self.dashboard_url:
            self.say(f"  dashboard: {self.dashboard_url}/  (live while the demo runs)")
        return self

    async def _start_dashboard(self) -> str:
        from driftline.dashboard.server import create_app

        runner = web.AppRunner(create_app(self.settings), access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        for port in (self.dashboard_port, 0):
            try:
                site = web.TCPSite(runner, "127.0.0.1", port)
                await site.start()
            except OSError:
                continue
            return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return ""

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 30)
        await self._stack.aclose()
