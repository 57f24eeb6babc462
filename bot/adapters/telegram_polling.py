"""Long polling that confirms an update to Telegram only once it has been handled.

python-telegram-bot's ``Updater`` confirms a batch (by the next ``getUpdates``' ``offset``) as soon as it has
queued it. A ``kill -9`` then loses every update fetched but not yet handled: Telegram never sends them
again, so those messages are neither answered nor logged (measured: 795 of 1,000 pushed in a burst).

Here the ``offset`` is the oldest update still being handled, so after a crash Telegram re-delivers exactly
the updates that were in flight. The case store recognises those already logged (``Outgoing.duplicate``:
keyed hash of channel, chat and message id) and the adapter does not answer them again.

* Order and fairness: one chat's updates are handled one after another, in order; different chats
  concurrently, at most ``concurrency`` at once. A chat's later updates wait without taking a slot, so one
  user flooding the bot holds one slot, not all of them.
* Cost: while updates are in hand, ``getUpdates`` returns at once (the unconfirmed ones come back with any
  new ones), so it is called at most every ``busy_interval`` seconds, and the pages are read as plain JSON:
  only new updates are turned into ``Update`` objects (about 0.2 ms each). When nothing is in hand it is a
  long poll. At most one page (100 updates) is held unconfirmed; with a full page in hand, the next call
  waits until a quarter of it is confirmable.

Webhook mode (``telegram_webhook``) keeps the same promise by answering Telegram's POST only after handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from telegram import Update
from telegram.error import InvalidToken, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application
from telegram.request import BaseRequest, HTTPXRequest

from bot.adapters.telegram_updates import (
    ChatOrderedRunner,
    read_update,
    run_application,
    run_until_signalled,
    with_retries,
)

log = logging.getLogger(__name__)

PAGE = 100  # getUpdates' maximum ``limit``
READ_SLACK = 5.0  # seconds a long poll may take beyond its ``timeout``


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class ConfirmingPoller:
    """Fetches updates with ``getUpdates`` and hands them to ``app.process_update``; see the module doc.

    ``request`` is the connection for ``getUpdates`` (one of its own by default, like python-telegram-bot's
    Updater); :meth:`poll` initialises it and :meth:`drain` shuts it down."""

    def __init__(
        self,
        app: Application,
        *,
        allowed_updates: Sequence[str] | None = None,
        timeout: float = 10.0,
        concurrency: int = 16,
        busy_interval: float = 0.02,
        stop_grace: float = 30.0,
        request: BaseRequest | None = None,
    ):
        self.app = app
        self.allowed_updates = list(allowed_updates) if allowed_updates is not None else None
        self.timeout = timeout
        self.busy_interval = busy_interval
        self.stop_grace = stop_grace
        self.request = request or HTTPXRequest(connection_pool_size=1, read_timeout=READ_SLACK)
        self._runner = ChatOrderedRunner(app, concurrency)
        self._pending: dict[int, asyncio.Task[None]] = {}  # update_id -> its task, until handled
        self._done: set[int] = set()  # handled, not yet confirmed (they come back with the next page)
        self._next: int | None = None  # one more than the last update_id received
        self._stopping = asyncio.Event()
        self._progress = asyncio.Event()  # set whenever an update has been handled

    # -- state --

    @property
    def offset(self) -> int | None:
        """What getUpdates confirms: everything before the oldest update still being handled."""
        return min(self._pending) if self._pending else self._next

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def stop(self) -> None:
        self._stopping.set()

    # -- handling --

    def _take(self, update: Update) -> None:
        task = self._runner.submit(update)
        self._pending[update.update_id] = task
        task.add_done_callback(functools.partial(self._finished, update.update_id))

    def _finished(self, update_id: int, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return  # not handled (cancelled at stop): stays unconfirmed, so Telegram sends it again
        self._pending.pop(update_id, None)
        self._done.add(update_id)
        self._progress.set()

    # -- waiting --

    async def _until_stopped(self, coro: Any) -> Any:
        """Run ``coro`` unless a stop is requested first (then it is cancelled and None returned)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stopper.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TelegramError):
            await task
        return None

    async def _sleep(self, seconds: float) -> None:
        await self._until_stopped(asyncio.sleep(seconds))

    async def _sleep_until_progress(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await self._until_stopped(asyncio.wait_for(self._progress.wait(), seconds))

    # -- polling --

    async def _get_updates(self, offset: int | None, timeout: float) -> list[dict[str, Any]]:
        """One raw page (plain JSON): the fields go in the query string, which the Bot API accepts like a body."""
        fields = {
            "offset": offset,
            "limit": PAGE,
            "timeout": int(timeout),
            "allowed_updates": self.allowed_updates,
        }
        query = urlencode({k: json.dumps(v) for k, v in fields.items() if v is not None})
        result = await self.request.post(
            f"{self.app.bot.base_url}/getUpdates?{query}", read_timeout=timeout + READ_SLACK
        )
        return result if isinstance(result, list) else []

    def _receive(self, page: list[dict[str, Any]]) -> int:
        """Hand over the page's new updates; returns how many it repeated (still in hand or handled)."""
        known = 0
        for data in page:
            update_id = data.get("update_id")
            if not isinstance(update_id, int):
                continue
            if update_id in self._pending or update_id in self._done:
                known += 1
                continue
            update = read_update(data, self.app)
            if update is None:
                self._done.add(update_id)  # unreadable: confirmed, or it would come back forever
                continue
            self._take(update)
        if page and isinstance(page[-1].get("update_id"), int):
            self._next = page[-1]["update_id"] + 1
        return known

    async def poll(self) -> None:
        """Until :meth:`stop`: fetch, hand over, and confirm what has been handled."""
        await self.request.initialize()
        backoff = 0.0
        last_poll = 0.0
        full_at: int | None = None  # the offset of the last page when it was all updates in hand
        while not self._stopping.is_set():
            busy = bool(self._pending)
            if busy and full_at is not None:
                advanced = (self.offset or full_at) - full_at
                waited = time.monotonic() - last_poll
                if advanced < PAGE // 4 and not (advanced > 0 and waited > 1.0):
                    await self._sleep_until_progress(0.5)  # a page in hand: nothing new can come yet
                    self._progress.clear()
                    continue
            if busy:  # getUpdates returns at once now: pace it
                wait = self.busy_interval - (time.monotonic() - last_poll)
                if wait > 0:
                    await self._sleep(wait)
                    continue
            last_poll = time.monotonic()
            offset = self.offset
            try:
                page = await self._until_stopped(self._get_updates(offset, 0 if busy else self.timeout))
            except InvalidToken:
                raise
            except RetryAfter as exc:
                log.warning("telegram: polling told to wait %s s", _seconds(exc.retry_after))
                await self._sleep(0.5 + _seconds(exc.retry_after))
                continue
            except TimedOut:
                continue  # a long poll that outlived its connection: ask again
            except TelegramError as exc:  # NetworkError, a 5xx, a Conflict…: back off and ask again
                await self.app.process_error(update=None, error=exc)
                backoff = min(30.0, max(0.5, backoff * 2))
                await self._sleep(backoff)
                continue
            if page is None:
                break  # stopped
            backoff = 0.0
            if offset is not None:  # this call confirmed everything before ``offset``
                self._done = {i for i in self._done if i >= offset}
            known = self._receive(page)
            full_at = offset if len(page) >= PAGE and known == len(page) else None

    async def drain(self) -> None:
        """Let the updates in hand finish (up to ``stop_grace`` seconds), then confirm them."""
        try:
            if self._pending:
                _, unfinished = await asyncio.wait(list(self._pending.values()), timeout=self.stop_grace)
                if unfinished:
                    log.warning(
                        "telegram: %d update(s) unfinished at stop; Telegram will resend them",
                        len(unfinished),
                    )
                    for task in unfinished:
                        task.cancel()
                    await asyncio.wait(unfinished)
            if self.offset is not None:
                try:
                    await self._get_updates(self.offset, 0)
                except TelegramError as exc:
                    log.warning("telegram: could not confirm the last updates (%s); they may come again", exc)
        finally:
            await self.request.shutdown()


def run_polling(
    app: Application,
    loop: asyncio.AbstractEventLoop,
    *,
    allowed_updates: Sequence[str] | None = None,
    concurrency: int = 16,
    bootstrap_retries: int = 3,
) -> None:
    """Poll on ``loop`` until SIGINT/SIGTERM, then finish the updates in hand, confirm them and close
    ``loop``: what ``Application.run_polling`` does, with the confirmation moved after the handling."""
    poller = ConfirmingPoller(app, allowed_updates=allowed_updates, concurrency=concurrency)

    async def serve() -> None:
        try:
            await poller.poll()
        finally:
            await poller.drain()

    async def prepare() -> None:
        delete = functools.partial(app.bot.delete_webhook, drop_pending_updates=False)
        await with_retries(delete, "deleteWebhook", bootstrap_retries)

    main = run_application(app, prepare, serve)
    run_until_signalled(loop, main, poller.stop)
