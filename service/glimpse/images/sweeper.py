"""Deleting stored images whose conversation is over.

An image may go once it is older than GLIMPSE_IMAGE_TTL_SECONDS *and* no live conversation holds it: the store's
TTL slides with every turn, a file's age does not, so a conversation still talking about a picture (sticky policy,
URL delivery) keeps it however old it is. With the store unreachable nothing is deleted: a sweep skipped costs
disk until the next one, a wrong deletion costs a picture in a live call.

Each sweep also tells the caches of pictures (`keep_only`: the data: URL cache) which images live conversations
hold, so a conversation that ended or expired leaves nothing in memory after the next sweep, whichever store it was in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..conversation.store import ConversationStore
from .storage import ImageStorage

log = logging.getLogger(__name__)


KeepOnly = Callable[[set[str]], None]


def _keep_everything(in_use: set[str]) -> None:
    return None


async def sweep_expired(storage: ImageStorage, store: ConversationStore, max_age_seconds: float,
                        keep_only: KeepOnly = _keep_everything) -> int:
    """One sweep; returns how many images were deleted."""
    in_use = await store.image_keys_in_use()
    keep_only(in_use)
    return await storage.sweep(max_age_seconds, keep=in_use)


async def sweep_forever(storage: ImageStorage, store: ConversationStore, max_age_seconds: float,
                        interval_seconds: float, keep_only: KeepOnly = _keep_everything) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            removed = await sweep_expired(storage, store, max_age_seconds, keep_only)
            if removed:
                log.info("swept %d expired images", removed)
        except Exception as exc:
            log.warning("image sweep skipped: %s", exc)
