"""`reachable backup`: a consistent copy while people are reporting, never with the key, and a
restore in which every kept report opens."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.cli import main
from fakes.harness import Person, polling_bot, settings_for
from fakes.postgres import PostgresServer
from fakes.telegram import FakeTelegram
from storage import Keyring, NewReport, StorageError
from storage.backup import back_up, check_backup

CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
PEOPLE = 6


async def keep_a_report(person: Person, n: int) -> str:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Robbery or theft")
    await person.taps("Done")
    await person.taps("This week")
    await person.taps("Skip")
    await person.taps("Skip")
    await person.says(f"Account number {n}: my phone was taken at a party.")
    for _ in range(3):
        await person.taps("Skip")
    await person.taps("Yes, it's right")
    said = "\n".join(await person.taps("Yes, keep it"))
    found = CODE.search(said)
    assert found is not None, said
    return found.group(1)


async def test_a_backup_taken_while_people_report_restores_with_every_kept_report_readable(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    key = Keyring.new_key().decode()
    settings = settings_for(fake, tmp_path / "data", key)
    copies: list[tuple[Path, int]] = []
    async with polling_bot(settings):
        people = [Person(fake, 5_000 + n) for n in range(PEOPLE)]

        async def one_after_another() -> list[str]:
            return [await keep_a_report(p, n) for n, p in enumerate(people)]

        reporting = asyncio.ensure_future(one_after_another())
        while not reporting.done():  # back up again and again while the reports are being kept
            target = tmp_path / "backups" / f"copy-{len(copies)}.sqlite3"
            target.parent.mkdir(exist_ok=True)
            copies.append((target, await asyncio.to_thread(back_up, settings.data_dir, target)))
            await asyncio.sleep(0.2)
        codes = await reporting
        final = tmp_path / "backups" / "final.sqlite3"
        assert await asyncio.to_thread(back_up, settings.data_dir, final) == PEOPLE
    keyring = Keyring([key.encode()])
    for copy, counted in [*copies, (final, PEOPLE)]:
        checked = await check_backup(copy, keyring)
        assert checked.reports == counted and checked.readable == counted, copy.name
        content = copy.read_bytes()
        assert key.encode() not in content and b"my phone was taken" not in content  # no key; encrypted
    assert len(copies) >= 2 and len(set(codes)) == PEOPLE


def test_a_backup_is_refused_inside_the_data_folder_or_over_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(StorageError, match="no database"):
        back_up(data, tmp_path / "copy.sqlite3")
    (data / "reachable.sqlite3").write_bytes(b"")
    with pytest.raises(StorageError, match="outside the data folder"):
        back_up(data, data / "copy.sqlite3")
    (tmp_path / "taken.sqlite3").write_bytes(b"x")
    with pytest.raises(StorageError, match="exists already"):
        back_up(data, tmp_path / "taken.sqlite3")


async def test_reachable_backup_check_reports_what_it_read(
    fake: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Keyring.new_key().decode()
    settings = settings_for(fake, tmp_path / "data", key)
    async with polling_bot(settings):
        await keep_a_report(Person(fake, 5_100), 1)
    monkeypatch.setenv("REACHABLE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("REACHABLE_ENCRYPTION_KEY", key)
    target = tmp_path / "copy.sqlite3"
    assert await asyncio.to_thread(main, ["backup", str(target), "--check"]) == 0
    out = capsys.readouterr().out
    assert "backed up 1 report(s)" in out and "1 of 1 report(s) readable with the key" in out
    monkeypatch.setenv("REACHABLE_ENCRYPTION_KEY", Keyring.new_key().decode())  # the wrong key
    assert await asyncio.to_thread(main, ["backup", str(tmp_path / "again.sqlite3"), "--check"]) == 1
    assert "0 of 1 report(s) readable" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["no/such/folder/x.sqlite3", "."])
def test_a_backup_to_a_bad_place_is_one_plain_line(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "reachable.sqlite3").touch()
    monkeypatch.setenv("REACHABLE_DATA_DIR", str(data))
    monkeypatch.setenv("REACHABLE_ENCRYPTION_KEY", Keyring.new_key().decode())
    assert main(["backup", str(tmp_path / where)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reachable: ") and err.count("\n") == 1 and "Traceback" not in err, err


async def test_a_postgresql_backup_is_pg_dump_sealed_and_restores_with_the_key(
    postgres: PostgresServer, tmp_path: Path, fake: FakeTelegram
) -> None:
    import subprocess

    from bot.ops.keys import backup
    from storage.postgres import PostgresStore
    from storage.postgres_backup import without_password

    key = Keyring.new_key().decode()
    url = postgres.new_database()
    sentence = "the sentence 4471 only the person wrote"
    async with PostgresStore(url, Keyring([key.encode()])) as store:
        report = NewReport("RPT-PG01", "7K2P-QX9D-M4TA-8BWE", {"account": sentence}, ("assault",), True, None, False, 1)
        await store.add_report(report)
    settings = settings_for(fake, tmp_path / "data", key, REACHABLE_DATABASE_URL=url)
    target = tmp_path / "backups" / "reachable.dump"
    target.parent.mkdir()
    assert await backup(settings, target, check=False) == 0
    assert target.stat().st_mode & 0o077 == 0, "readable by its owner only"
    as_sql = (
        await asyncio.to_thread(
            subprocess.run, ["pg_restore", "--file", "-", str(target)], capture_output=True, check=True
        )
    ).stdout
    assert b"CREATE TABLE public.reports" in as_sql and b"RPT-PG01" in as_sql
    assert sentence.encode() not in as_sql, "content stays sealed in the dump"

    restored = postgres.new_database()
    restore = ["pg_restore", "--no-owner", "--dbname", restored, str(target)]
    await asyncio.to_thread(subprocess.run, restore, capture_output=True, check=True)
    async with PostgresStore(restored, Keyring([key.encode()])) as store:
        found = await store.get_report("RPT-PG01")
    assert found is not None and found.summary["account"] == sentence
    assert without_password("postgresql://bot:s%40cret@db.example:5433/reachable") == (
        "postgresql://bot@db.example:5433/reachable",
        {"PGPASSWORD": "s@cret"},
    )
    assert without_password("postgresql://b%40t@[2001:db8::1]/r?password=p%26w&sslmode=require") == (
        "postgresql://b%40t@[2001:db8::1]/r?sslmode=require",
        {"PGPASSWORD": "p&w"},
    )
