"""What long polling (``telegram_polling``) and the webhook (``telegram_webhook``) share: handing updates to
the application (one chat's in order, different chats concurrently; ``submit`` returns the update's task, since
both confirm an update to Telegram only once it has been handled) and running the application until a stop
signal, as python-telegram-bot's ``run_polling``/``run_webhook`` would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.error import NetworkError, RetryAfter
from telegram.ext import Application

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def chat_key(update: Update) -> object:
    """Updates with the same key are handled in order; ``None``: no order needed."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return ("user", update.effective_user.id)
    return None


def read_update(data: Any, app: Application) -> Update | None:
    """The ``Update`` in a JSON object from Telegram, or None (logged) when it cannot be read."""
    try:
        update = Update.de_json(data, app.bot)
    except Exception as exc:  # malformed input from outside, not a bug here: one line, no traceback
        log.warning("telegram: an update could not be read (%s); skipped", type(exc).__name__)
        return None
    insert = getattr(app.bot, "insert_callback_data", None)
    if insert is not None:
        insert(update)  # arbitrary callback data, when the bot uses it
    return update


class ChatOrderedRunner:
    """Runs ``app.process_update`` for each submitted update, at most ``concurrency`` at once. A chat's later
    updates wait for its earlier ones without taking a slot, so one user flooding the bot holds one slot."""

    def __init__(self, app: Application, concurrency: int = 16):
        self.app = app
        self._slots = asyncio.Semaphore(concurrency)
        self._last_of_chat: dict[object, asyncio.Task[None]] = {}

    def submit(self, update: Update) -> asyncio.Task[None]:
        key = chat_key(update)
        previous = self._last_of_chat.get(key) if key is not None else None
        task = asyncio.create_task(self._handle(update, previous), name=f"update-{update.update_id}")
        if key is not None:
            self._last_of_chat[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        return task

    def _forget(self, key: object, task: asyncio.Task[None]) -> None:
        if self._last_of_chat.get(key) is task:
            del self._last_of_chat[key]

    async def _handle(self, update: Update, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # the chat's earlier update first; its errors are its own
        async with self._slots:
            try:
                await self.app.process_update(update)  # handler errors go to the error handler
            except Exception:
                log.exception("telegram: update %s could not be processed", update.update_id)


async def with_retries(call: Callable[[], Awaitable[Any]], what: str, retries: int) -> None:
    """``call``, tried again (after 1, 2, … s) on network trouble or "retry after", at most ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            await call()
            return
        except (NetworkError, RetryAfter) as exc:
            if attempt == retries:
                raise
            log.warning("telegram: %s failed (%s), retrying", what, exc)
            await asyncio.sleep(1 + attempt)


async def run_application(
    app: Application, prepare: Callable[[], Awaitable[None]], serve: Callable[[], Awaitable[None]]
) -> None:
    """The application's life around ``serve``: initialize (and post_init), ``prepare`` (tell Telegram where
    updates go), start, serve until stopped, then stop and shut down with their hooks, whatever happens."""
    try:
        await app.initialize()  # a no-op when already initialized
        if app.post_init is not None:
            await app.post_init(app)
        await prepare()
        await app.start()
        try:
            await serve()
        finally:
            await app.stop()
            if app.post_stop is not None:
                await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)


def run_until_signalled(
    loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, None], stop: Callable[[], None]
) -> None:
    """Run ``main`` on ``loop`` with SIGINT/SIGTERM calling ``stop``, then close ``loop``."""
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        loop.run_until_complete(main)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        loop.close()
