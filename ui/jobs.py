"""Long work in a background thread that outlives the browser tab: the page stays responsive,
offers a stop button, and a reload or a second tab of the same user finds the job again.

Jobs are kept per user (the signed-in subject, or the local user) for the server's lifetime.
At most ``MAX_RUNNING`` run at once (2 on 2 cores); later ones wait in a queue, in order.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import CoreError

log = logging.getLogger("css.jobs")
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
    values: list[float] = field(default_factory=list)  # reported losses, one per report
    value_steps: list[int] = field(default_factory=list)  # the step each loss was reported at
    result: Any = None
    error: str | None = None
    note: str | None = None  # what happened after the work (e.g. where the model was stored)
    phase: str = ""  # what the work does after its steps (a check, saving), shown meanwhile
    check: Any = None  # the fidelity check of a trained model (core.loading.FidelityCheck)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    queued: bool = True
    began: float | None = None  # when it left the queue and its work started
    first_report: tuple[int, float] | None = None  # (step, time) of the first progress report
    last_report: tuple[int, float] | None = None  # (step, time) of the latest one
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
        now = time.time()
        self.step, self.total = step, total
        if self.first_report is None:
            self.first_report = (step, now)
        self.last_report = (step, now)
        if value is not None:
            self.values.append(value)
            self.value_steps.append(step)

    @property
    def steps_per_second(self) -> float | None:
        """The measured rate: steps since the first report over the time since then (the setup
        before the first step, such as encoding the cohort, is left out); before a second
        report, steps over the time since the work began. None before any step."""
        if self.first_report is None or self.last_report is None or self.step <= 0:
            return None
        (s0, t0), (s1, t1) = self.first_report, self.last_report
        if s1 > s0 and t1 > t0:
            return (s1 - s0) / (t1 - t0)
        began = self.began if self.began is not None else self.started
        return s1 / (t1 - began) if t1 > began else None

    @property
    def seconds_left(self) -> float | None:
        """The time to ``total`` at the measured rate (None until there is one)."""
        rate = self.steps_per_second
        if rate is None or rate <= 0:
            return None
        return max(self.total - self.step, 0) / rate


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
            job.began = time.time()
            try:
                if job.stop_event.is_set():  # stopped while it waited
                    job.error = "Stopped before it started."
                else:
                    job.result = work(job)
            except CoreError as exc:  # typed core errors are written for users
                job.error = str(exc)
            except Exception as exc:  # shown as a message, never dying silently in the thread
                error_id = uuid.uuid4().hex[:8]
                # as ui.errors.guard: the stack to the log, the message withheld (it may quote data)
                withheld = RuntimeError(f"{type(exc).__name__} (message withheld from the log)")
                log.error(
                    "error %s in job %s",
                    error_id,
                    title,
                    exc_info=(RuntimeError, withheld, exc.__traceback__),
                )
                job.error = (
                    f"It hit an unexpected problem ({type(exc).__name__}) and stopped; nothing "
                    f"was saved. If it happens again, give the administrator this error id: "
                    f"`{error_id}`."
                )
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
