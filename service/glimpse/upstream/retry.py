"""When to retry an upstream request before its first byte, and how long to wait: the `openai` SDK's rules
(openai/_base_client.py `_should_retry`, `_calculate_retry_timeout`, `_parse_retry_after_header`; constants in
openai/_constants.py), so a turn sent without the SDK is retried exactly as the SDK would retry it.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

INITIAL_RETRY_DELAY = 0.5  # openai/_constants.py
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER_DELAY = 2 * 60.0  # a server-directed delay longer than this is not waited for: no retry
RETRIED_STATUSES = frozenset({408, 409, 429})  # request timeout, lock timeout, rate limit; and every 5xx


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`retry-after-ms`, else `retry-after` as seconds or as an HTTP date; None when absent or unreadable."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in ("inf", "+inf", "infinity", "+infinity"):
            return MAX_RETRY_AFTER_DELAY + 1  # an overflowing number is an excessive delay, not a malformed one
        return delay / divisor
    try:
        parsed = email.utils.parsedate_tz(headers.get("retry-after") or "")
        return None if parsed is None else float(email.utils.mktime_tz(parsed) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    retry_after = retry_after_seconds(headers)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > MAX_RETRY_AFTER_DELAY:
        return False
    verdict = headers.get("x-should-retry")  # not a standard header: the server says whether to retry
    if verdict in ("true", "false"):
        return verdict == "true"
    return status in RETRIED_STATUSES or status >= 500


def retry_delay(attempt: int, headers: Mapping[str, str] | None) -> float:
    """Seconds before retry number `attempt + 1` (the SDK's max_retries - remaining): the server's delay when it
    gave one of at most two minutes, else 0.5 s doubling per retry up to 8 s, less a random 0 to 25 %."""
    retry_after = retry_after_seconds(headers)
    if retry_after is not None and math.isfinite(retry_after) and 0 < retry_after <= MAX_RETRY_AFTER_DELAY:
        return retry_after
    backoff = min(INITIAL_RETRY_DELAY * 2.0 ** min(attempt, 1000), MAX_RETRY_DELAY)
    return max(0.0, backoff * (1 - 0.25 * random.random()))
