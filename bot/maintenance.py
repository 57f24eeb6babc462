"""Background jobs a long-running bot starts beside its channel: retention and knowledge hot-reload.

    retention = RetentionScheduler(service.store, settings.RETENTION_DAYS)
    retention.start()                       # purges once now, then once a day
    reloader = KnowledgeReloader(service, kb_dir)
    reloader.install_sighup()               # from the main thread: `kill -HUP <pid>` reloads at once
    reloader.start()                        # polls knowledge/ file times every few seconds
    ...
    reloader.stop(); retention.stop()

Both run in daemon threads; each thread uses its own SQLite connection (``CaseStore`` is per-thread).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bot.core import Analyzer
from bot.knowledge import DEFAULT_DIR, Knowledge, KnowledgeError, load_knowledge
from bot.knowledge.load import knowledge_files
from bot.service import Service
from bot.store import CaseStore
from bot.store.admin import cutoff, purge_before

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 3600.0
POLL_SECONDS = 3.0


def purge_expired(store: CaseStore, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete cases older than ``retention_days`` (RETENTION_DAYS); returns how many."""
    return purge_before(store, cutoff(dt.timedelta(days=retention_days), now))


class _Worker:
    """A daemon thread that calls ``tick`` at start-up and then every ``interval`` seconds or when woken."""

    name = "worker"

    def __init__(self, interval: float):
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Runs in the worker thread when it ends."""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"smsguard-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self.tick()
                except Exception:  # a failed run must not end the job; the next one may succeed
                    log.exception("%s failed", self.name)
                self._wake.wait(self.interval)
                self._wake.clear()
        finally:
            self._cleanup()


class RetentionScheduler(_Worker):
    """Purges cases older than RETENTION_DAYS once at start and then once a day."""

    name = "retention"

    def __init__(
        self,
        store: CaseStore,
        retention_days: int,
        *,
        interval: float = DAY_SECONDS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        super().__init__(interval)
        self.store = store
        self.retention_days = retention_days
        self._clock = clock
        self.runs = 0
        self.purged = 0  # cases deleted since start

    def tick(self) -> None:
        n = purge_expired(self.store, self.retention_days, self._clock())
        self.runs += 1
        self.purged += n
        if n:
            log.info("retention: purged %d case(s) older than %d days", n, self.retention_days)

    def _cleanup(self) -> None:
        self.store.close()  # this thread's connection


Snapshot = dict[str, tuple[int, int]]


class KnowledgeReloader(_Worker):
    """Swaps a new :class:`Analyzer` into the service when knowledge/ changes (file times) or on SIGHUP.

    A knowledge base that fails validation is not loaded: the errors are logged and the service keeps
    answering with the knowledge it has.
    """

    name = "knowledge-reload"

    def __init__(
        self,
        service: Service,
        root: Path | None = None,
        *,
        interval: float = POLL_SECONDS,
        warm: bool = True,
    ):
        super().__init__(interval)
        self.service = service
        self.root = Path(root or DEFAULT_DIR)
        self.warm = warm
        self._forced = False
        self._previous_handler: Any = None
        self._snapshot = self.snapshot()
        self.reloads = 0
        self.failures = 0

    def snapshot(self) -> Snapshot:
        """Modification time and size of every knowledge file (added and removed files count too)."""
        out: Snapshot = {}
        try:
            files = knowledge_files(self.root)
        except OSError:
            return out
        for path in files:
            try:
                st = path.stat()
            except OSError:  # removed while listing
                continue
            out[str(path.relative_to(self.root))] = (st.st_mtime_ns, st.st_size)
        return out

    def tick(self) -> None:
        forced, self._forced = self._forced, False
        current = self.snapshot()
        if forced or current != self._snapshot:
            self._snapshot = current  # also after a failure: retry on the next change, not every poll
            self.reload()

    def reload(self) -> Knowledge | None:
        """Load and validate knowledge/ now; swap it in. Returns the new knowledge, or None (old one kept)."""
        try:
            kb = load_knowledge(self.root)
            analyzer = Analyzer(kb)
            if self.warm:
                analyzer.warm_up()  # here, not in the first user's request
        except KnowledgeError as exc:
            self.failures += 1
            log.error("knowledge reload failed; still serving the previous knowledge base:")
            for problem in exc.problems:
                log.error("  %s", problem)
            return None
        old = self.service.swap_analyzer(analyzer)
        self.reloads += 1
        log.info("knowledge reloaded: version %s (was %s)", kb.version, old.kb.version)
        return kb

    def request_reload(self) -> None:
        """Reload at the next wake-up, changed or not (what SIGHUP does)."""
        self._forced = True
        self._wake.set()

    def install_sighup(self) -> bool:
        """Make SIGHUP reload the knowledge (until :meth:`stop`); only from the main thread on POSIX."""
        if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
            return False
        self._previous_handler = signal.signal(signal.SIGHUP, lambda signum, frame: self.request_reload())
        return True

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        if self._previous_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous_handler)
            self._previous_handler = None


class MemorySweeper(_Worker):
    """Calls :meth:`Service.sweep` every minute, so expired raw text leaves memory without new traffic."""

    name = "memory-sweep"

    def __init__(self, service: Service, interval: float = 60.0):
        super().__init__(interval)
        self.service = service

    def tick(self) -> None:
        self.service.sweep()


@contextlib.contextmanager
def maintenance_jobs(
    service: Service, retention_days: int | None, sighup: bool = False
) -> Iterator[list[KnowledgeReloader | RetentionScheduler | MemorySweeper]]:
    """Knowledge hot-reload and, given RETENTION_DAYS, retention, for as long as a channel runs.

    ``sighup`` also makes SIGHUP reload (only where SIGHUP does not mean "the terminal closed")."""
    reloader = KnowledgeReloader(service, service.analyzer.kb.root)
    jobs: list[KnowledgeReloader | RetentionScheduler | MemorySweeper] = [reloader]
    if retention_days is not None:
        jobs.append(RetentionScheduler(service.store, retention_days))
    jobs.append(MemorySweeper(service))
    for job in jobs:
        job.start()
    if sighup:
        reloader.install_sighup()
    try:
        yield list(jobs)
    finally:
        for job in reversed(jobs):
            job.stop()
