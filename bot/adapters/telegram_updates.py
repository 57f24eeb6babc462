"""Handing Telegram updates to the application: one chat's in order, different chats concurrently.

Shared by long polling (``telegram_polling``) and the webhook (``telegram_webhook``), which both confirm an
update to Telegram only once it has been handled, so both need to know when that is: ``submit`` returns the
update's task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)


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
