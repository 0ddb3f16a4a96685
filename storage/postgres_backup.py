"""Backing up the PostgreSQL backend: PostgreSQL's own ``pg_dump`` in its custom format, a
consistent snapshot taken while instances run (one transaction, no lock on anyone's turns). What
it holds is what the server holds: content sealed by the bot, codes as slow hashes, no key. The
password is given to pg_dump in its environment, never on a command line other users can see.
To restore: ``createdb NEW`` then ``pg_restore --dbname NEW FILE``, and point
REACHABLE_DATABASE_URL at it with the same REACHABLE_ENCRYPTION_KEY."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from storage.errors import StorageError

TIMEOUT = 3600


def without_password(url: str) -> tuple[str, dict[str, str]]:
    """The address with its password taken out (from the user part or a ``password`` query
    parameter), as written otherwise (IPv6 brackets, percent-encoding), and the environment that
    gives the password to libpq."""
    parts = urlsplit(url)
    secret: dict[str, str] = {}
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        secret["PGPASSWORD"] = unquote(password)
        userinfo = user
    query = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in query:
        if name == "password":
            secret["PGPASSWORD"] = value
    kept = urlencode([(name, value) for name, value in query if name != "password"])
    netloc = f"{userinfo}@{hostport}" if at else hostport
    return urlunsplit(parts._replace(netloc=netloc, query=kept)), secret


def pg_dump(url: str, target: Path) -> None:
    if target.exists():
        raise StorageError(f"{target} exists already: choose a new file name")
    if not target.parent.is_dir():
        raise StorageError(f"the folder {target.parent} does not exist: create it first, or choose another")
    found = shutil.which("pg_dump")
    if found is None:
        raise StorageError("pg_dump is not installed here: install PostgreSQL's client (Debian: postgresql-client)")
    address, secret = without_password(url)
    environ = {**os.environ, **secret}
    # Created private before pg_dump writes into it.
    target.touch(mode=0o600, exist_ok=False)
    command = [found, "--format=custom", "--no-owner", "--file", str(target), "--dbname", address]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=TIMEOUT, check=False)  # noqa: S603
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        # Its message names the host and database at most; never the password, which it was not given.
        raise StorageError(
            f"pg_dump failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
