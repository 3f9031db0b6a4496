"""Observability on the real stack.

- The live dashboard in a real headless Chromium (Debian's, driven by Playwright), fed by the
  real worker: the page loads, its plots render, and an alarm raised by the worker during the
  test appears on the page without a reload.  A screenshot is kept as a test artefact
  (``$DRIFTLINE_ARTIFACTS``, default ``test-artifacts/``).
- Every metric the Grafana board and the Prometheus alert rules in ``deploy/`` use is in the
  processes' real ``/metrics`` output (the worker's scraped over HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from driftline.dashboard.server import create_app
from tests.integration.conftest import REPO, start_worker, stop_worker
from tests.integration.synthetic import play, set_reference
from tests.unit.test_deploy_files import alert_rules, grafana_exprs, promql_metric_names

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DRIFTLINE_ARTIFACTS", REPO / "test-artifacts"))
MODEL = "dash-model"


@pytest.fixture(scope="module")
def settings(settings):
    """The dashboard's history: a point every half second (5 s in production)."""
    return dataclasses.replace(settings, series_every_s=0.5)


async def _play(settings, rng, n: int, shift: float, start: float) -> None:
    await play(settings, MODEL, rng, n, shift, start)


@pytest.mark.timeout(300)
async def test_the_page_plots_live_data_and_shows_an_alarm_raised_during_the_test(
    settings, worker, tmp_path
):
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: make test installs it"
    rng = np.random.default_rng(5)
    set_reference(settings, MODEL, rng)
    now = time.time() - 3600
    await _play(settings, rng, 2000, 0.0, now)
    # normal traffic: history to plot

    runner = web.AppRunner(create_app(settings, poll_s=0.3))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/?model={MODEL}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 1100})
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            await page.goto(url)
            await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            # Plotly drew real traces from the worker's series (not an empty frame)
            await page.wait_for_function(
                "Number(document.body.dataset.points) >= 2", timeout=30_000
            )
            for plot in ("#metrics-plot", "#detector-plot", "#version-plot"):
                await page.wait_for_selector(f"{plot} .main-svg", timeout=10_000)
            assert await page.locator("#detector-plot .scatterlayer .trace").count() >= 2
            assert (
                await page.locator("#metrics-plot .scatterlayer .trace path.js-line").count() >= 1
            )
            await page.wait_for_selector("#live.on", timeout=10_000)
            assert await page.locator("#alarm-list li").count() == 0

            # the feature drifts now: the worker raises an alarm, the page shows it live
            await _play(settings, rng, 3000, 3.0, now + 2.0)
            await page.wait_for_selector("#alarm-list li[data-status='firing']", timeout=90_000)
            firing = await page.locator("#alarm-list li[data-status='firing']").all_inner_texts()
            # the shifted feature: its own drift, the joint input drift or outlying inputs
            expected = ("feature:f0", "data:features", "security:input_outliers")
            assert any(kind in text for text in firing for kind in expected), firing
            await page.wait_for_selector("#open-alarms tbody tr", timeout=30_000)
            points_before = int(await page.evaluate("document.body.dataset.points"))
            # points come with traffic (at most one per series_every_s): keep some flowing
            await _play(settings, rng, 600, 3.0, now + 10.0)
            await page.wait_for_function(
                f"Number(document.body.dataset.points) > {points_before}", timeout=30_000
            )
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert not page_errors, page_errors
            await browser.close()
    finally:
        await runner.cleanup()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


async def test_api_and_metrics_endpoints_answer(settings, worker):
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    import aiohttp

    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200 and await r.text() == "ok"
            async with http.get(f"{base}/static/plotly.min.js") as r:
                assert r.status == 200 and len(await r.read()) > 1_000_000
            async with http.get(f"{base}/api/models/{MODEL}") as r:
                body = await r.json()
                assert set(body) >= {"series", "open_alarms", "versions", "alarms"}
            async with http.get(f"{base}/metrics") as r:
                assert "driftline_dashboard_streams_total" in await r.text()
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker(settings, tmp_path_factory, metrics_port):
    """The real worker, serving its Prometheus metrics on a free port."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    os.environ["DRIFTLINE_METRICS_PORT"] = str(metrics_port)
    try:
        proc = start_worker(settings, log_path)
    finally:
        os.environ.pop("DRIFTLINE_METRICS_PORT", None)
    yield proc
    stop_worker(proc, log_path)


def _exported_names(text: str) -> set[str]:
    """Every sample name a /metrics page can have: its samples, and for families without
    samples yet, the names their type implies."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


async def test_every_metric_the_grafana_board_and_alert_rules_use_is_exported(
    settings, worker, metrics_port
):
    import aiohttp
    from prometheus_client import generate_latest

    import bridges.telemetry  # noqa: F401  (the bridge's and learner's metrics, as they
    import learners.telemetry  # noqa: F401   export them from their own processes)

    await _play(settings, np.random.default_rng(9), 600, 0.0, time.time() - 600)
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while True:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                worker_text = await response.text()
            if f'model="{MODEL}"' in worker_text or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    exported = _exported_names(worker_text) | _exported_names(generate_latest().decode())
    # real values from the worker, not only names
    families = {f.name: f for f in text_string_to_metric_families(worker_text)}
    processed = {
        s.labels["kind"]: s.value
        for s in families["driftline_worker_events"].samples
        if s.labels.get("outcome") == "processed"
    }
    assert processed["inferences"] >= 600, processed
    ratios = [s for s in families["driftline_detector_ratio"].samples if s.labels["model"] == MODEL]
    assert ratios and all(s.value >= 0 for s in ratios)
    lags = families["driftline_worker_consumer_lag"].samples
    assert any(s.labels["topic"] == settings.topics.inferences for s in lags), lags

    used = set()
    for rule in alert_rules():
        used |= promql_metric_names(rule["expr"])
    for expr in grafana_exprs():
        used |= promql_metric_names(expr)
    prometheus_own = {"up"}  # written by Prometheus itself for every scrape target
    missing = sorted(used - exported - prometheus_own)
    assert not missing, f"used by deploy/ but not exported: {missing}"
