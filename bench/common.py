"""Shared pieces: percentiles, memory, CPU, a server started for the bench, and a person who
answers as soon as the bot replies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fakes.telegram import FakeTelegram

# A report as a person types it: every answer, then keep it.
FLOW = ["/report", "1", "1, 2", "1", "2", "skip", "It happened after the party.", "skip", "skip", "skip", "1", "1"]


@dataclass
class Server:
    """A server the benchmark started in a process of its own: where it listens, its process."""

    base: str
    pid: int
    pause: float = float("nan")  # its longest garbage-collection pause, seconds, once stopped (when told)


@contextlib.asynccontextmanager
async def started(
    what: str, command: list[str], environ: dict[str, str], health: str, notes: bool = False
) -> AsyncIterator[Server]:
    """``command`` as a process of its own, once ``health`` (its URL for a health check) answers
    200; stopped after. ``notes``: it prints ``pause_s=…`` as it stops, and that is noted (its
    output is read to the end, so only for a server whose every process stops with it)."""
    output = subprocess.PIPE if notes else subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        *command, env=environ, stdout=output, stderr=subprocess.DEVNULL, start_new_session=True
    )
    server = Server(health.rsplit("/", 1)[0], process.pid)
    try:
        async with aiohttp.ClientSession() as probe:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the {what} did not start")
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(health) as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield server
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:  # Sanic's manager told to stop while its worker still starts: all of it
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = await process.communicate()
        for pair in (out or b"").decode().split():
            if pair.startswith("pause_s="):
                server.pause = float(pair.partition("=")[2])


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), in MiB."""
    path = Path(f"/proc/{pid or 'self'}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def anonymous_mb(pid: int) -> float:
    """The part of a process's resident memory that is its own (not pages of files it maps, such
    as shared libraries, which the system can drop and read again), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int | None = None) -> float:
    path = Path(f"/proc/{pid or 'self'}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process and the processes it started (a server's workers) have used so far,
    in user and system time (Linux)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_times() -> tuple[int, int]:
    """The machine's CPU time so far, in ticks: all of it, and what its host took for others
    (``steal``: a virtual machine's cores running someone else's work; Linux), (0, 0) elsewhere."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def stolen_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time its host took for others between two ``machine_times``."""
    total, steal = after[0] - before[0], after[1] - before[1]
    return steal / total if total > 0 else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Latencies:
    values: list[float] = field(default_factory=list)

    def p99_ms(self) -> float:
        return percentile([v * 1000 for v in self.values], 99)

    def p50_ms(self) -> float:
        return percentile([v * 1000 for v in self.values], 50)

    def line(self) -> str:
        ms = [v * 1000 for v in self.values]
        return (
            f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
            f"mean {statistics.fmean(ms):.1f} ms ({len(ms)} replies)"
        )


class Replies:
    """Waits for the bot's next message in a chat and times how long it took."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.waiting: dict[int, tuple[asyncio.Future[str], float, int]] = {}
        self.latencies = Latencies()
        self.steps: list[int] = []  # which message of the flow each latency belongs to
        self.awaited: dict[int, tuple[str, float]] = {}  # chat -> words still awaited, since when
        self.until = Latencies()  # from the message to the reply holding the awaited words
        original = fake._m_sendmessage

        async def send(params: dict[str, object]) -> object:
            result = await original(params)
            chat = int(str(params["chat_id"]))
            text = str(params.get("text", ""))
            waiting = self.waiting.pop(chat, None)
            if waiting is not None and not waiting[0].done():
                self.latencies.values.append(time.perf_counter() - waiting[1])
                self.steps.append(waiting[2])
                waiting[0].set_result(text)
            awaited = self.awaited.get(chat)
            if awaited is not None and awaited[0] in text:
                del self.awaited[chat]
                self.until.values.append(time.perf_counter() - awaited[1])
            return result

        fake._m_sendmessage = send  # type: ignore[method-assign]

    def expect(self, chat: int, tag: int = 0, until: str | None = None) -> asyncio.Future[str]:
        """The next reply in ``chat``; ``until``: also time the reply holding these words."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting[chat] = (future, time.perf_counter(), tag)
        if until is not None:
            self.awaited[chat] = (until, time.perf_counter())
        return future


class Pauses:
    """The garbage collector's pauses while inside: each holds up every reply waiting on the loop."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def __enter__(self) -> Pauses:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)
