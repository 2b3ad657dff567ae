"""Work that runs once in a background thread while the app stays responsive: loading a model, listing
examples. Its state is always readable, so a UI can say what is happening and, on failure, why.

    task = BackgroundTask("model", lambda report: load(...)).start()
    task.snapshot()          # TaskSnapshot(state="running", phase="downloading ...", elapsed_s=3.2, ...)
    task.result()            # the value; the task's own exception when it failed; NotReadyError before
    task.wait(timeout_s=60)  # block until done or failed (tests, benchmarks)

The function receives `report(phase)` to publish what it is doing. Exceptions are kept, never
swallowed: `result()` re-raises the original exception object.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

IDLE, RUNNING, DONE, FAILED = "idle", "running", "done", "failed"


class NotReadyError(RuntimeError):
    """`result()` was called before the task finished."""


@dataclass(frozen=True)
class TaskSnapshot:
    name: str
    state: str                    # IDLE | RUNNING | DONE | FAILED
    phase: str                    # the latest report() text
    elapsed_s: float              # since start (until the end once finished)
    error: BaseException | None   # FAILED only


class BackgroundTask(Generic[T]):
    def __init__(self, name: str, function: Callable[[Callable[[str], None]], T]):
        self.name = name
        self._function = function
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._state, self._phase = IDLE, "not started"
        self._value: T | None = None
        self._error: BaseException | None = None
        self._started: float | None = None
        self._finished: float | None = None

    def start(self) -> "BackgroundTask[T]":
        """Start once; later calls do nothing."""
        with self._lock:
            if self._state != IDLE:
                return self
            self._state, self._phase, self._started = RUNNING, "starting", time.monotonic()
        threading.Thread(target=self._run, name=f"background-{self.name}", daemon=True).start()
        return self

    def _report(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def _run(self) -> None:
        try:
            value = self._function(self._report)
        except BaseException as exc:  # kept and re-raised by result(): the caller decides what it means
            with self._lock:
                self._state, self._error, self._finished = FAILED, exc, time.monotonic()
        else:
            with self._lock:
                self._state, self._value, self._finished = DONE, value, time.monotonic()
                self._phase = "done"
        finally:
            self._done.set()

    def snapshot(self) -> TaskSnapshot:
        with self._lock:
            end = self._finished or time.monotonic()
            elapsed = 0.0 if self._started is None else end - self._started
            return TaskSnapshot(self.name, self._state, self._phase, elapsed, self._error)

    @property
    def state(self) -> str:
        return self.snapshot().state

    def result(self) -> T:
        snapshot = self.snapshot()
        if snapshot.state == FAILED:
            raise snapshot.error
        if snapshot.state != DONE:
            raise NotReadyError(f"{self.name}: {snapshot.phase} ({snapshot.elapsed_s:.0f} s so far)")
        return self._value

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the task has finished (done or failed); False on timeout."""
        return self._done.wait(timeout_s)
