"""Webhook mode that answers Telegram's POST only once the update has been handled.

python-telegram-bot's ``run_webhook`` answers 200 as soon as it has queued an update, so a crash loses every
update queued but not yet handled: Telegram never sends them again. Here the request waits for the handling
(well under a second), so after a crash or a stop that could not finish an update Telegram gets no 200 and
delivers it again; the case store recognises a message already logged and it is not answered twice (as with
polling, see ``telegram_polling``). One chat's updates are handled in order, different chats concurrently.

Requests are checked like python-telegram-bot checks them: JSON only (else 403) and, when a secret is set, the
``X-Telegram-Bot-Api-Secret-Token`` header (else 403). A body that is not an update gets 400 and is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import tornado.web
from telegram.ext import Application
from tornado.httpserver import HTTPServer

from bot.adapters.telegram_updates import (
    ChatOrderedRunner,
    read_update,
    run_application,
    run_until_signalled,
    with_retries,
)

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class WebhookConfig:
    url: str  # what Telegram is told to call
    url_path: str  # the path this server answers, without slashes
    host: str
    port: int
    secret: str | None


class ConfirmingWebhook:
    """Handles the POSTed updates and knows which are still in hand, so a stop can let them finish."""

    def __init__(
        self, app: Application, hook: WebhookConfig, *, concurrency: int = 16, stop_grace: float = 30.0
    ):
        self.app = app
        self.hook = hook
        self.stop_grace = stop_grace
        self._runner = ChatOrderedRunner(app, concurrency)
        self._in_hand: set[asyncio.Task[None]] = set()
        self._open_requests = 0
        self._no_open_requests = asyncio.Event()
        self._no_open_requests.set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def accepts(self, secret: str | None) -> bool:
        if self.hook.secret is None:
            return True
        return secret is not None and hmac.compare_digest(secret.encode(), self.hook.secret.encode())

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Wraps a request until its answer is sent, so a stop waits for the answer, not only the handling."""
        self._open_requests += 1
        self._no_open_requests.clear()
        try:
            yield
        finally:
            self._open_requests -= 1
            if not self._open_requests:
                self._no_open_requests.set()

    async def handle(self, data: object) -> HTTPStatus:
        """The status for Telegram: 200 once handled; 503 when stopping (Telegram will send it again)."""
        if self._stopping.is_set():
            return HTTPStatus.SERVICE_UNAVAILABLE
        update = read_update(data, self.app) if isinstance(data, dict) else None
        if update is None:
            return HTTPStatus.BAD_REQUEST
        task = self._runner.submit(update)
        self._in_hand.add(task)
        task.add_done_callback(self._in_hand.discard)
        await asyncio.wait([task])
        return HTTPStatus.SERVICE_UNAVAILABLE if task.cancelled() else HTTPStatus.OK

    async def drain(self) -> None:
        """Let the updates in hand finish (up to ``stop_grace`` seconds; the rest are cancelled and answered
        503) and their answers be sent."""
        if self._in_hand:
            _, unfinished = await asyncio.wait(list(self._in_hand), timeout=self.stop_grace)
            if unfinished:
                log.warning(
                    "telegram: %d update(s) unfinished at stop; Telegram will resend them", len(unfinished)
                )
                for task in unfinished:
                    task.cancel()
                await asyncio.wait(unfinished)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_open_requests.wait(), 5.0)


class _UpdateHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("POST",)

    def initialize(self, webhook: ConfirmingWebhook) -> None:
        self.webhook = webhook

    async def post(self) -> None:
        if self.request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        if not self.webhook.accepts(self.request.headers.get(SECRET_HEADER)):
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        with self.webhook.request():
            status = await self.webhook.handle(data)
            self.set_status(status)
            await self.finish()  # resolves once the answer is written out


class _WebhookApplication(tornado.web.Application):
    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Silent: the bot logs what it handles; tornado's access log would add a line per message."""


def run_webhook(
    app: Application,
    loop: asyncio.AbstractEventLoop,
    hook: WebhookConfig,
    *,
    allowed_updates: Sequence[str] | None = None,
    concurrency: int = 16,
    bootstrap_retries: int = 3,
) -> None:
    """Serve the webhook on ``loop`` until SIGINT/SIGTERM, then finish the updates in hand and close ``loop``.
    Raises OSError when ``hook.host:hook.port`` cannot be listened on."""
    webhook = ConfirmingWebhook(app, hook, concurrency=concurrency)
    server = HTTPServer(_WebhookApplication([(rf"/{hook.url_path}/?", _UpdateHandler, {"webhook": webhook})]))

    async def prepare() -> None:
        server.listen(hook.port, address=hook.host)  # before setWebhook: Telegram may call at once
        allowed = list(allowed_updates) if allowed_updates is not None else None
        set_webhook = functools.partial(
            app.bot.set_webhook, url=hook.url, secret_token=hook.secret, allowed_updates=allowed
        )
        await with_retries(set_webhook, "setWebhook", bootstrap_retries)

    async def serve() -> None:
        await webhook.wait_stopped()
        server.stop()  # no new connections; the requests in hand still get their answer
        await webhook.drain()

    async def main() -> None:
        try:
            await run_application(app, prepare, serve)
        finally:
            server.stop()
            await server.close_all_connections()

    run_until_signalled(loop, main(), webhook.stop)
