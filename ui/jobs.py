"""Long work in a background thread, so the page stays responsive and can offer a stop button."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import CoreError


@dataclass
class Job:
    """Progress, live loss values, result or error of one background task."""

    title: str
    total: int
    step: int = 0
    values: list[float] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        self.stop_event.set()

    def report(self, step: int, total: int, value: float | None = None) -> None:
        self.step, self.total = step, total
        if value is not None:
            self.values.append(value)


def start(title: str, total: int, work: Callable[[Job], Any]) -> Job:
    """Run ``work(job)`` in a daemon thread; typed core errors end up in ``job.error``."""
    job = Job(title=title, total=total)

    def run() -> None:
        try:
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
