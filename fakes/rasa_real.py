"""A real Rasa 3.6 server for tests: trained from deploy/rasa, run from its own Python 3.10
virtual environment (``make rasa``, in .venv-rasa), calling our action server with the shared
token. People write through Rasa's own channels: ``rest`` (the answer comes back in the request),
``callback`` (Rasa posts each message to a recorder here) and Twilio (Rasa's own Twilio channel,
its REST client replaced by a recorder: see fakes/rasa_twilio.py)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-rasa"
RASA = VENV / "bin" / "rasa"
PROJECT = ROOT / "deploy" / "rasa"
TWILIO_NUMBER = "+447700900000"
QUIET = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONWARNINGS": "ignore",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def available() -> bool:
    return RASA.exists()


def _project_files() -> list[Path]:
    return [PROJECT / "config.yml", PROJECT / "domain.yml", *sorted((PROJECT / "data").glob("*.yml"))]


def model() -> Path:
    """The model trained from deploy/rasa as it is now (trained once, kept in .venv-rasa)."""
    digest = hashlib.sha256()
    for path in _project_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(RASA.resolve().read_bytes())
    name = digest.hexdigest()[:20]
    kept = VENV / "models" / f"{name}.tar.gz"
    if kept.exists():
        return kept
    kept.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        command = [
            str(RASA),
            "train",
            "--config",
            str(PROJECT / "config.yml"),
            "--domain",
            str(PROJECT / "domain.yml"),
            "--data",
            str(PROJECT / "data"),
            "--out",
            work,
            "--fixed-model-name",
            name,
        ]
        done = subprocess.run(command, cwd=work, env={**os.environ, **QUIET}, capture_output=True, timeout=900)
        if done.returncode != 0:
            said = done.stdout + done.stderr
            sys.stderr.write(said.decode(errors="replace")[-8000:])
            raise RuntimeError("rasa train failed")
        shutil.move(Path(work) / f"{name}.tar.gz", kept)
    return kept


class Recorder:
    """What Rasa posted to people: callback messages and texts for Twilio, by recipient. A plain
    HTTP server in a thread of its own, so one Rasa serves the tests of a whole module."""

    def __init__(self) -> None:
        self.callback: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.sms: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if self.path == "/callback":
                    recorder.callback[str(message.get("recipient_id"))].append(message)
                else:
                    recorder.sms[str(message.get("to"))].append(message)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class RealRasa:
    """``rasa run --enable-api`` on 127.0.0.1 with the shipped endpoints (its token from the
    environment) and logging config, calling an action server on ``actions_port``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.actions_port = _free_port()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="rasa-"))
        self.log = self.folder / "rasa.log"
        self.recorder = Recorder()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, trained: Path) -> None:
        shipped = (PROJECT / "endpoints.yml").read_text()
        endpoints = shipped.replace("http://127.0.0.1:5055/webhook", f"http://127.0.0.1:{self.actions_port}/webhook")
        assert endpoints != shipped
        credentials = {
            "rest": None,
            "callback": {"url": f"{self.recorder.url}/callback"},
            "fakes.rasa_twilio.RecordingTwilio": {
                "account_sid": "AC" + "0" * 32,
                "auth_token": "0" * 32,
                "twilio_number": TWILIO_NUMBER,
            },
        }
        (self.folder / "endpoints.yml").write_text(endpoints)
        (self.folder / "credentials.yml").write_text(yaml.safe_dump(credentials))
        command = [
            str(RASA),
            "run",
            "--enable-api",
            "--auth-token",
            self.token,
            "--model",
            str(trained),
            "--interface",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
            "--logging-config-file",
            str(PROJECT / "logging.yml"),
        ]
        environ = {
            **os.environ,
            **QUIET,
            "PYTHONPATH": str(ROOT),
            "REACHABLE_RASA_TOKEN": self.token,
            "REACHABLE_TWILIO_RECORDER": f"{self.recorder.url}/twilio",
        }
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=self.folder, env=environ, stdout=log, stderr=subprocess.STDOUT
            )
        self._ready()

    def _ready(self, seconds: float = 300) -> None:
        status = f"{self.url}/status?token={self.token}"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError("rasa run stopped:\n" + self.logged()[-4000:])
            with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(status, timeout=5) as answer:
                if json.loads(answer.read()).get("model_file"):
                    return
            time.sleep(0.25)
        raise RuntimeError("rasa run did not start:\n" + self.logged()[-4000:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.recorder.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    # ------------------------------------------------------------------ people on channels
    async def rest(self, sender: str, text: str) -> list[dict[str, Any]]:
        """REST: the answer is the response, nothing else ever reaches this person."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as answer,
        ):
            assert answer.status == 200, await answer.text()
            found: list[dict[str, Any]] = await answer.json()
            return found

    async def callback(self, sender: str, text: str) -> list[dict[str, Any]]:
        """Callback: Rasa posts each message to the recorder before it answers the request."""
        before = len(self.recorder.callback[sender])
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/webhooks/callback/webhook", json={"sender": sender, "message": text}) as answer,
        ):
            assert answer.status == 200, await answer.text()
        return self.recorder.callback[sender][before:]

    async def sms(self, sender: str, text: str) -> list[str]:
        """Twilio: a form post as Twilio makes it; the texts Rasa sent back to the phone."""
        before = len(self.recorder.sms[sender])
        form = {"From": sender, "To": TWILIO_NUMBER, "Body": text, "MessageSid": "SM" + uuid.uuid4().hex}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/webhooks/twilio/webhook", data=form) as answer,
        ):
            assert answer.status in (200, 204), await answer.text()
        return [str(m["body"]) for m in self.recorder.sms[sender][before:]]
