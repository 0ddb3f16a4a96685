"""Stopping a background task for certain.

On Python 3.11, ``asyncio.wait_for`` can return just as a cancellation arrives and drop it
(aiosmtplib waits for an SMTP server's answers with it; HTTP clients have their own waits). A
task that lost its cancellation goes on, and whoever awaits it after ``cancel()`` waits for
ever: a stop that never ends. Here the request is repeated until the task has ended."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("reachable.tasks")
PATIENCE = 1.0  # seconds between asking again
TRIES = 30


def stop_if_asked() -> None:
    """In a loop of a background task: end it if it was asked to and a library let that go."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended, asking again should a cancellation be lost.
    An error it had ended with is logged by its kind, not raised: a stop goes on to close the
    rest (the message ids a quick exit needs above all)."""
    if task is None:
        return
    for _ in range(TRIES):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=PATIENCE)
    else:
        if not task.done():
            name = task.get_name() if isinstance(task, asyncio.Task) else "a task"
            log.error("%s did not stop after %d requests; left behind", name, TRIES)
            return
    log_failure(task)


def log_failure(task: asyncio.Future[Any]) -> None:
    """An ended task's error, by its kind only (never its text, which may hold what people wrote)."""
    if not task.cancelled() and task.exception() is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else "a background task"
        log.error("%s had ended with %s", name, type(task.exception()).__name__)
