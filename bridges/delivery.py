"""HTTP delivery with retries: exponential backoff with full jitter, ``Retry-After`` honoured.

Each attempt ends in one of three ways:

- a 2xx answer: delivered;
- a 408, 425, 429 or 5xx answer, a refused connection or a timeout: *transient*, tried again
  after a backoff (or after the receiver's ``Retry-After``, capped), up to ``attempts`` tries;
- any other answer (400 bad payload, 401/403 bad key, 404 wrong URL): *permanent*, not retried -
  sending the same body again cannot succeed.

Error details never contain the URL or the body: both can hold secrets (a Slack webhook's path,
a PagerDuty routing key).

>>> parse_retry_after("7")
7.0
>>> parse_retry_after("soon") is None
True
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # tries in the bridge's main loop before the alarm is parked
    initial_s: float = 0.5
    max_backoff_s: float = 30.0
    retry_after_cap_s: float = 120.0  # a receiver's Retry-After is honoured up to this
    timeout_s: float = 10.0  # one request

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_s <= 0 or self.timeout_s <= 0:
            raise ValueError("attempts >= 1, initial_s > 0 and timeout_s > 0 are required")


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    permanent: bool  # refused in a way a retry cannot fix
    attempts: int
    status: int | None  # the last HTTP status (None: no answer)
    detail: str
    seconds: float


class TransientFailure(Exception):
    def __init__(self, detail: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(detail)
        self.detail, self.status, self.retry_after = detail, status, retry_after


class PermanentFailure(Exception):
    def __init__(self, detail: str, status: int):
        super().__init__(detail)
        self.detail, self.status = detail, status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(multiplier=policy.initial_s, max=policy.max_backoff_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, policy.retry_after_cap_s)
        return backoff(state)

    return wait


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return type(exc).__name__  # never str(exc): some carry the URL


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    policy: RetryPolicy,
    content_type: str = "application/json",
    on_retry: Callable[[str], None] | None = None,
) -> Outcome:
    """POST ``body`` as JSON until it is delivered, refused for good, or out of attempts."""
    data = orjson.dumps(body)
    headers = {"Content-Type": content_type, "User-Agent": "driftline-bridge"}
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s)
    started = time.monotonic()
    state = {"attempts": 0, "status": None}

    async def attempt() -> None:
        state["attempts"] += 1
        try:
            async with session.post(url, data=data, headers=headers, timeout=timeout) as resp:
                state["status"] = resp.status
                await resp.read()
                if 200 <= resp.status < 300:
                    return
                detail = f"HTTP {resp.status}"
                if resp.status in TRANSIENT_STATUSES:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise TransientFailure(detail, resp.status, retry_after)
                raise PermanentFailure(detail, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            state["status"] = None
            raise TransientFailure(_describe(exc)) from None

    def before_sleep(retry_state: RetryCallState) -> None:
        if on_retry is not None and retry_state.outcome is not None:
            exc = retry_state.outcome.exception()
            on_retry(getattr(exc, "detail", type(exc).__name__))

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientFailure),
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        await retrying(attempt)
    except TransientFailure as exc:
        return Outcome(
            False, False, state["attempts"], exc.status, exc.detail, time.monotonic() - started
        )
    except PermanentFailure as exc:
        return Outcome(
            False, True, state["attempts"], exc.status, exc.detail, time.monotonic() - started
        )
    return Outcome(
        True, False, state["attempts"], state["status"], "delivered", time.monotonic() - started
    )
