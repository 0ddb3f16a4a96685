"""Shared fixtures. Everything on our side is real: the engine, the responses, SQLite files in a
temporary folder. A guard fails any test that tries to reach beyond this machine."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.postgres import WHY_MISSING, PostgresServer, running_server
from fakes.telegram import FakeTelegram
from flows import Engine, EngineConfig
from responses import Renderer, Responses
from storage import CodeHasher, Keyring, SQLiteStore
from tests.helpers import Chat, FixedTokens

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise AssertionError(f"a test tried to reach {host}: tests may only use 127.0.0.1")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API on 127.0.0.1 that aiogram's own client talks to."""
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def responses() -> Responses:
    return Responses.load()


@pytest.fixture
def engine(responses: Responses) -> Engine:
    return Engine(responses, EngineConfig(forwarding=False), tokens=FixedTokens())


@pytest.fixture
def forwarding_engine(responses: Responses) -> Engine:
    return Engine(responses, EngineConfig(forwarding=True), tokens=FixedTokens())


@pytest.fixture
def renderer(responses: Responses) -> Renderer:
    return Renderer(responses, retention_days=90, draft_hours=24)


@pytest.fixture
def chat(engine: Engine, renderer: Renderer) -> Chat:
    return Chat(engine, renderer)


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring([Keyring.new_key()])


class Clock:
    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def hasher() -> CodeHasher:
    return CodeHasher()


@pytest.fixture
async def store(tmp_path: Path, keyring: Keyring, clock: Clock, hasher: CodeHasher) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=clock, hasher=hasher, retention_days=90)
    async with opened:
        yield opened


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for this test process (skipped where the server is not installed,
    except in CI, where .ci/run installs it and its absence is a failure)."""
    try:
        with running_server() as server:
            yield server
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip(WHY_MISSING)
