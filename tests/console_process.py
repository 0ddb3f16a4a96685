"""Drive ``reachable console`` as a real process through its stdin and stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fakes.harness import MODEL_CACHE

PROMPT = "\n> "


class ConsoleProcess:
    def __init__(self, data_dir: Path, chat: str = "local", env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHABLE_")}
        environ.update(
            {"REACHABLE_DATA_DIR": str(data_dir), "REACHABLE_CACHE_DIR": str(MODEL_CACHE), "PYTHONUNBUFFERED": "1"}
        )
        environ.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "console", "--chat", chat],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            text=True,
            encoding="utf-8",
        )
        self._buffer = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.screen = self._until_prompt()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read(1):
            with self._lock:
                self._buffer += chunk

    def _until_prompt(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._buffer.endswith(PROMPT):
                    screen, self._buffer = self._buffer, ""
                    return screen
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        stderr = self.process.stderr.read() if self.process.stderr and self.process.poll() is not None else ""
        raise AssertionError(f"no prompt; output so far:\n{self._buffer}\n{stderr}")

    def send(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        self.screen = self._until_prompt()
        return self.screen

    def type(self, line: str) -> None:
        """A line typed, without waiting for the prompt (what follows may come unasked)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """Output printed without being asked (the demo inbox, a staff message), up to ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if text in self._buffer:
                    shown, self._buffer = self._buffer, ""
                    return shown
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never showed; output so far:\n{self._buffer}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._release()

    def close(self) -> int:
        """End of input, as Ctrl-D: the console must exit cleanly."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout=30)
        self._release()
        return code

    def _release(self) -> None:
        self._reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
