"""The threads that run Argon2, with keeping a report ahead of checking a code.

Keeping a report hashes its new code; checking a code verifies it against a stored hash. Both
cost the same ~20 ms of CPU, and the machine has few cores. With a plain pool, someone sending
wrong codes as fast as they can queues hundreds of verifications in front of a person waiting
for their code. Here every job has a priority: a waiting hash for a new report always runs
before any waiting verification. Closing cancels what has not started, so a process under that
load still exits in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

KEEP = 0  # hashing the code of a report being kept
CHECK = 1  # verifying a code someone typed
# One thread a core, each below the event loop's priority (``_yield_to_replies``): hashes use
# what the replies leave idle. With one core left out, as before, a surge of 1,000 people
# keeping their reports queued every hash on one core while the other was half idle: on the
# web chat, 'keep' p50 0.5-2.3 s, against 41-87 ms this way, the answers' p99 unchanged.
THREADS = max(1, os.cpu_count() or 2)

_Job = tuple[int, int, Callable[..., Any] | None, tuple[Any, ...], "Future[Any] | None"]


def _yield_to_replies() -> None:
    """Run this hashing thread at a lower priority than the event loop (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class HashingPool:
    """``threads`` worker threads taking the most urgent waiting job first (then the oldest)."""

    def __init__(self, threads: int = THREADS, name: str = "reachable-argon2") -> None:
        self.threads = threads
        self._jobs: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self.cancelled = 0  # jobs let go by close, never started
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        _yield_to_replies()
        while True:
            _, _, work, args, future = self._jobs.get()
            if work is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = work(*args)
            except BaseException as error:  # handed to whoever waits for it
                future.set_exception(error)
            else:
                future.set_result(result)

    async def run(self, priority: int, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on a hashing thread, after every waiting job of a more urgent priority."""
        if self._closed:
            raise RuntimeError("the hashing threads have stopped")
        future: Future[T] = Future()
        self._jobs.put((priority, next(self._order), work, args, future))
        return await asyncio.wrap_future(future)

    def waiting(self) -> int:
        """Jobs not yet started (for tests and the bench)."""
        return self._jobs.qsize()

    def close(self) -> None:
        """Stop taking jobs, cancel those not started, and let the threads end after the job
        each is running (a few milliseconds)."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                _, _, _, _, future = self._jobs.get_nowait()
            except queue.Empty:
                break
            if future is not None and future.cancel():
                self.cancelled += 1
        for _ in self._threads:
            self._jobs.put((-1, next(self._order), None, (), None))
        for thread in self._threads:  # each ends after the hash it is running (~20 ms)
            thread.join(timeout=1.0)

    @property
    def stopped(self) -> bool:
        return self._closed and not any(thread.is_alive() for thread in self._threads)
