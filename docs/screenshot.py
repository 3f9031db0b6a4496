"""Take the README's dashboard screenshot from a running ``driftline demo --keep-open``.

    driftline demo --keep-open &          # wait for "still running for you"
    python docs/screenshot.py http://127.0.0.1:8050 docs/img/dashboard.png

Uses Debian's chromium through Playwright (as the browser test does).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import urllib.request


async def main(base: str, out: str) -> None:
    from playwright.async_api import async_playwright

    models = json.load(urllib.request.urlopen(f"{base}/api/models"))
    demo = [
        m["model"] for m in models if m["model"].startswith("demo-") and "canary" not in m["model"]
    ]
    model = sorted(demo)[-1] if demo else models[0]["model"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        await page.goto(f"{base}/?model={model}")
        await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        await page.wait_for_timeout(3000)
        await page.screenshot(path=out, full_page=True)
        await browser.close()
    print(f"{out}: {model}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
