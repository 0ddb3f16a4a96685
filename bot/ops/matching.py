"""Matching across services, and the matching key: ``reachable match export`` writes this
service's digests under a network matching key the participating services share (references and
digests only: no identifier, no harm, no time); ``reachable match combine`` finds the digests
two or more services hold and tells each service which of its references matched, without
anyone needing a key; ``reachable match rotate-key`` puts every digest under a new matching key."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.core.stores import open_store
from storage import SQLiteStore
from storage.lock import DataLock
from storage.matching import MatchingKey

if TYPE_CHECKING:
    from storage.postgres import PostgresStore

FORMAT = "reachable-matching-export"
VERSION = 1


def _store(settings: Settings, matching: MatchingKey | None = None) -> SQLiteStore | PostgresStore:
    return open_store(settings, matching=matching)


async def export(settings: Settings, out: Path) -> int:
    if settings.matching_network_key_file is None:
        raise ConfigError("set REACHABLE_MATCHING_NETWORK_KEY_FILE to the network matching key the services share")
    network = MatchingKey.load(settings.matching_network_key_file, create=False)
    store = _store(settings)
    async with store:
        namings = await store.namings()
    entries = sorted({(network.digest(kind, canonical).hex(), reference) for reference, kind, canonical in namings})
    body = {
        "format": FORMAT,
        "version": VERSION,
        "service": settings.service_name,
        "entries": [{"digest": digest, "reference": reference} for digest, reference in entries],
    }
    await asyncio.to_thread(out.write_text, json.dumps(body, indent=2) + "\n", "utf-8")
    print(f"wrote {out}: {len(entries)} digest(s) of {len({r for _, r in entries})} report(s), no identifier in it")
    return 0


def _read(path: Path) -> tuple[str, list[tuple[str, str]]]:
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != FORMAT or body.get("version") != VERSION:
            raise ValueError("not a matching export of this version")
        return str(body["service"]), [(str(e["digest"]), str(e["reference"])) for e in body["entries"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: {error}") from error


def combine(paths: Sequence[Path], out: Path | None = None) -> int:
    """Digests two or more services hold: for each service, which of its references matched,
    and the other services' references they matched (to contact each other's caseworkers)."""
    held: dict[str, dict[str, set[str]]] = {}  # digest -> service -> references
    services = []
    for path in paths:
        service, entries = _read(path)
        if service in services:
            raise ConfigError(f"{path}: the service {service!r} is in two exports")
        services.append(service)
        for digest, reference in entries:
            held.setdefault(digest, {}).setdefault(service, set()).add(reference)
    found: dict[str, list[dict[str, Any]]] = {service: [] for service in services}
    for by_service in held.values():
        if len(by_service) < 2:
            continue
        for service, references in by_service.items():
            others = {other: sorted(refs) for other, refs in sorted(by_service.items()) if other != service}
            found[service].extend({"reference": r, "matched": others} for r in sorted(references))
    for service in services:
        matches = found[service]
        print(
            f"{service}: {len(matches)} reference(s) matched"
            + "".join(f"\n  {m['reference']} <- {m['matched']}" for m in matches)
        )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{service}.matches.json").write_text(
                json.dumps({"service": service, "matches": matches}, indent=2) + "\n"
            )
    return 0


def new_network_key(path: Path) -> int:
    if path.exists():
        raise ConfigError(f"{path} exists already: a network key is made once and shared")
    MatchingKey.load(path, create=True)
    print(f"wrote a new network matching key to {path}: share it with the services, by hand, never by email")
    return 0


async def rotate_key(settings: Settings) -> int:
    """A new matching key: every digest again under it, then the new key replaces the old file.
    Refused while the bot runs on the same data folder."""
    path = settings.matching_key_path
    with DataLock(settings.data_dir, "rotate the matching key"):
        old = MatchingKey.load(path, create=False)
        # Written first; a run stopped before the end finds it and finishes with the same key.
        pending = path.with_name(path.name + ".new")
        new = MatchingKey.load(pending, create=True)
        store = _store(settings, old)
        async with store:
            count = await store.rekey(new)
        os.replace(pending, path)
    print(f"{count} digest(s) now under the new matching key in {path}; the old key is gone")
    return 0
