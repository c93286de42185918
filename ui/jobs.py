"""Long work in a background thread that outlives the browser tab: the page stays responsive,
offers a stop button, and a reload or a second tab of the same user finds the job again.

Jobs are kept per user (the signed-in subject, or the local user) for the server's lifetime.
At most ``MAX_RUNNING`` run at once (2 on 2 cores); later ones wait in a queue, in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import CoreError

MAX_RUNNING = 2
_slots = threading.BoundedSemaphore(MAX_RUNNING)
_lock = threading.Lock()
_by_user: dict[str, list[Job]] = {}
_queue: list[Job] = []  # waiting for a slot, oldest first


@dataclass(eq=False)
class Job:
    """Progress, live loss values, result or error of one background task."""

    title: str
    total: int
    owner: str = ""
    step: int = 0
    values: list[float] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    note: str | None = None  # what happened after the work (e.g. where the model was stored)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    queued: bool = True
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def ahead(self) -> int:
        """Jobs queued before this one (0 when it runs or is next)."""
        with _lock:
            return _queue.index(self) if self in _queue else 0

    def stop(self) -> None:
        self.stop_event.set()

    def report(self, step: int, total: int, value: float | None = None) -> None:
        self.step, self.total = step, total
        if value is not None:
            self.values.append(value)


def start(title: str, total: int, work: Callable[[Job], Any], owner: str = "") -> Job:
    """Run ``work(job)`` in a daemon thread once a slot is free; typed core errors end up in
    ``job.error``. The job is listed under ``owner`` for :func:`latest`."""
    job = Job(title=title, total=total, owner=owner)
    with _lock:
        _by_user.setdefault(owner, []).append(job)
        _queue.append(job)

    def run() -> None:
        with _slots:
            with _lock:
                _queue.remove(job)
            job.queued = False
            try:
                if job.stop_event.is_set():  # stopped while it waited
                    job.error = "Stopped before it started."
                else:
                    job.result = work(job)
            except CoreError as exc:
                job.error = str(exc)
            except Exception as exc:  # shown to the user rather than dying silently in the thread
                job.error = f"Unexpected error: {type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()

    job.thread = threading.Thread(target=run, name=f"job:{title}", daemon=True)
    job.thread.start()
    return job


def latest(owner: str) -> Job | None:
    """The user's running job, else their most recent one."""
    with _lock:
        jobs = list(_by_user.get(owner, ()))
    running = [j for j in jobs if j.running]
    return (running or jobs or [None])[-1]


def waiting() -> int:
    with _lock:
        return len(_queue)
