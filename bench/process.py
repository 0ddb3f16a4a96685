"""How heavy `reachable run` is, for `make bench`: seconds from starting it to its first Bot API
call (the understanding step ready), its memory once idle, on each Telegram library; and what each
part costs, imported one after another in a fresh process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import anonymous_mb, rss_mb
from fakes.harness import bot_process_env, settings_for
from fakes.telegram import FakeTelegram
from storage import Keyring

SETTLE = 3.0  # seconds of idling before memory is read
# Each part after the ones before it, in one process: what it adds.
PARTS = """
import json, sys, time
from pathlib import Path
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def note(part):
    print(json.dumps([part, time.time(), rss()]), flush=True)
note("the Python interpreter")
import bot.launch, bot.core.app
note("Reachable's core: engine, flows, storage, encryption, numpy")
from responses import Responses
Responses.load()
note("the responses, read and checked")
from flows.classifier import load
assert load(next(Path(sys.argv[1]).glob("understanding-*.npz"))) is not None
note("the understanding step's saved model")
import bot.channels.telegram.ptb_run
note("python-telegram-bot")
import bot.channels.telegram.aiogram_run
note("aiogram")
"""
FRAMEWORK_NAMES = {"ptb": "python-telegram-bot", "aiogram": "aiogram"}


async def start(framework: str, cache: Path) -> tuple[float, float, float]:
    """Seconds from starting `reachable run` on ``framework`` to its first Bot API call once the
    understanding step is ready (an empty ``cache`` folder: trained at this start), and MiB
    resident once it has idled, all of it and its own (without mapped files)."""
    fake = FakeTelegram()
    await fake.start()
    settings = settings_for(
        fake,
        Path(tempfile.mkdtemp(prefix="reachable-cold-")),
        Keyring.new_key().decode(),
        REACHABLE_FRAMEWORK=framework,
        REACHABLE_CACHE_DIR=str(cache),
    )
    started = asyncio.get_running_loop().time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=bot_process_env(settings), stderr=subprocess.DEVNULL
    )
    try:
        while not any(method in ("setMyCommands", "getUpdates") for method, _ in fake.calls):
            if process.returncode is not None:
                raise RuntimeError(f"reachable run on {framework} stopped")
            await asyncio.sleep(0.01)
        elapsed = asyncio.get_running_loop().time() - started
        await asyncio.sleep(SETTLE)
        return elapsed, rss_mb(process.pid), anonymous_mb(process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        await fake.stop()


def parts(cache: Path) -> list[tuple[str, float, float]]:
    """(part, seconds it added, MiB it added), in a fresh process; the interpreter's seconds are
    from starting the process."""
    started = time.time()
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", PARTS, str(cache)], capture_output=True, text=True, check=True
    )
    rows, before = [], (started, 0.0)
    for line in out.stdout.splitlines():
        part, seconds, mib = json.loads(line)
        rows.append((part, seconds - before[0], mib - before[1]))
        before = (seconds, mib)
    return rows


async def measure() -> tuple[str, dict[str, float]]:
    """The lines `make bench` prints, and the figures its machine-readable line carries (for the
    default library, python-telegram-bot)."""
    cache = Path(tempfile.mkdtemp(prefix="reachable-model-"))
    trained, _, _ = await start("ptb", cache)  # an empty cache: the model is trained during this start
    runs = {framework: await start(framework, cache) for framework in FRAMEWORK_NAMES}
    lines = ["`reachable run`, from starting the process to its first Bot API call (understanding ready):"]
    lines += [
        f"  on {FRAMEWORK_NAMES[framework] + ':':21} {seconds:.2f} s with the saved model, then {mib:.0f} MiB idle "
        f"({own:.0f} MiB its own, the rest pages of libraries)" + (" (the default)" if framework == "ptb" else "")
        for framework, (seconds, mib, own) in runs.items()
    ]
    lines.append(f"  the first start, training the model: {trained:.2f} s (targets: <= 1.5 s, <= 120 MiB idle)")
    lines.append("  what each part adds, imported one after another:")
    lines += [f"    {part + ':':62} {seconds:5.2f} s {mib:6.1f} MiB" for part, seconds, mib in parts(cache)]
    seconds, mib, _ = runs["ptb"]
    return "\n".join(lines), {"cold_s": seconds, "idle_mib": mib, "cold_trained_s": trained}
