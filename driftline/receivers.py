"""Local paging receivers for tests and ``driftline demo``: an aiohttp server on 127.0.0.1 that validates each body against a schema,
keeps what it accepted, and can be told to fail (status, ``Retry-After``) for a while.

>>> import asyncio
>>> async def demo():
...     async with Receiver("slack", schema={"required": ["text"]}) as r:
...         return r.url.startswith("http://127.0.0.1:")
>>> asyncio.run(demo())
True
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import jsonschema
from aiohttp import web


class Receiver:
    def __init__(
        self,
        name: str,
        schema: dict[str, Any],
        path: str = "/hook",
        content_type: str | None = None,
        secret: str | None = None,
        on_body: Callable[[dict[str, Any]], None] | None = None,
        port: int = 0,
    ) -> None:
        self.name, self.schema, self.path = name, schema, path
        self.content_type = content_type
        self.secret = secret  # PagerDuty-style: the body's routing_key must equal it
        self.on_body, self.port = on_body, port
        self.accepted: list[dict[str, Any]] = []
        self.invalid: list[str] = []  # why bodies were refused (a failing test shows them)
        self.requests = 0
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.failing_until: float | None = None  # answer 503 until this loop time
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.failures.extend([(status, headers)] * times)

    def fail_for(self, seconds: float) -> None:
        self.failing_until = asyncio.get_running_loop().time() + seconds

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failures:
            status, headers = self.failures.popleft()
            return web.json_response({"status": "failing"}, status=status, headers=headers)
        if self.failing_until and asyncio.get_running_loop().time() < self.failing_until:
            return web.json_response({"status": "down"}, status=503)
        if self.content_type and not request.headers.get("Content-Type", "").startswith(
            self.content_type
        ):
            self.invalid.append(f"content type {request.headers.get('Content-Type')}")
            return web.json_response({"status": "invalid content type"}, status=400)
        try:
            body = json.loads(await request.read())
            jsonschema.validate(body, self.schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            self.invalid.append(str(exc)[:500])
            return web.json_response({"status": "invalid", "message": str(exc)[:200]}, status=400)
        if self.secret is not None and body.get("routing_key") != self.secret:
            self.invalid.append("wrong routing key")
            return web.json_response({"status": "invalid routing key"}, status=400)
        self.accepted.append(body)
        self.arrived.set()
        if self.on_body is not None:
            self.on_body(body)
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
