"""The dashboard's HTTP side: the page, its JSON API, a server-sent-events stream, /metrics.

=====================  =========================================================================
``GET /``              the page (``static/index.html``)
``GET /api/models``    models with their open-alarm counts
``GET /api/models/M``  model M: metrics and detector readings over time, open alarms, the
                       version timeline, recent alarms
``GET /events?model=M`` SSE: ``point`` (a new series point), ``alarm`` (firing or resolved, as
                       it reaches the alarms topic), ``state`` (open alarms and versions)
``GET /metrics``       Prometheus metrics of the dashboard process
``GET /healthz``       ``ok`` once Redis answers
=====================  =========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from contracts.redis_client import connect_async
from contracts.redis_keys import RedisKeys
from contracts.settings import Settings
from driftline.dashboard.data import DashboardData
from driftline.dashboard.feed import AlarmFeed

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
FEED = web.AppKey("feed", AlarmFeed)
FEED_TASK = web.AppKey("feed_task", asyncio.Task)
SSE_CLIENTS = Counter("driftline_dashboard_streams_total", "Live streams opened by pages")


def plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise FileNotFoundError(f"plotly.min.js not found in the plotly package ({path})")
    return path


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


def create_app(settings: Settings, poll_s: float = 1.0) -> web.Application:
    app = web.Application()
    client = connect_async(settings)
    data = DashboardData(client, RedisKeys(settings.key_prefix))
    feed = AlarmFeed(settings.bootstrap_list, settings.topics.alarms)
    stop = asyncio.Event()
    plotly_path = plotly_js()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def plotly(request: web.Request) -> web.FileResponse:
        return web.FileResponse(plotly_path, headers={"Cache-Control": "max-age=86400"})

    async def models(request: web.Request) -> web.Response:
        rows = await data.models()
        for row in rows:
            row["recent_alarms"] = len(feed.recent.get(row["model"], ()))
        return web.json_response(rows, dumps=_dumps)

    async def model(request: web.Request) -> web.Response:
        model_id = request.match_info["model"]
        state = await data.model(model_id)
        state["alarms"] = list(feed.recent.get(model_id, ()))
        return web.json_response(state, dumps=_dumps)

    async def events(request: web.Request) -> web.StreamResponse:
        model_id = request.query.get("model", "")
        after = request.query.get("after", "-")
        if after == "-" and model_id:
            after = await data.last_id(model_id)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        SSE_CLIENTS.inc()
        alarms: asyncio.Queue = asyncio.Queue(maxsize=1000)
        arrived = asyncio.Event()

        def on_alarm(view: dict) -> None:
            if not model_id or view["model"] == model_id:
                with contextlib.suppress(asyncio.QueueFull):
                    alarms.put_nowait(view)
                arrived.set()

        feed.listeners.append(on_alarm)
        try:
            ticks = 0
            while not stop.is_set():
                arrived.clear()
                while not alarms.empty():
                    await _send(response, "alarm", alarms.get_nowait())
                if model_id:
                    for point in await data.series(model_id, after):
                        after = point["id"]
                        await _send(response, "point", point)
                    if ticks % 5 == 0:
                        await _send(
                            response,
                            "state",
                            {
                                "open_alarms": await data.open_alarms(model_id),
                                "versions": await data.versions(model_id),
                            },
                        )
                else:
                    await response.write(b": keep-alive\n\n")
                ticks += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), poll_s)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.listeners.remove(on_alarm)
        return response

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        try:
            await client.ping()
        except Exception as exc:
            return web.Response(status=503, text=f"redis: {type(exc).__name__}")
        return web.Response(text="ok")

    async def start_feed(app: web.Application) -> None:
        app[FEED_TASK] = asyncio.create_task(feed.run(stop))

    async def stop_feed(app: web.Application) -> None:
        stop.set()
        app[FEED_TASK].cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await app[FEED_TASK]
        await client.aclose()

    app.on_startup.append(start_feed)
    app.on_shutdown.append(stop_feed)
    app.router.add_get("/", index)
    app.router.add_get("/static/plotly.min.js", plotly)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/models", models)
    app.router.add_get("/api/models/{model}", model)
    app.router.add_get("/events", events)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app[FEED] = feed
    return app


async def _send(response: web.StreamResponse, event: str, payload) -> None:
    await response.write(f"event: {event}\ndata: {_dumps(payload)}\n\n".encode())
