"""Key rotation: everything stored is re-encrypted under a new key and still opens without the old."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storage import Answer, ChatKey, Keyring, KeyringError, NewReport, SQLiteStore
from storage.accounts import StaffAccount
from storage.base import Naming
from storage.crypto import KEY_FILE
from storage.matching import MatchingKey

CODE = "7K2P-QX9D-M4TA-8BWE"
REPORT = NewReport("ROTA-0001", CODE, {"account": "Tapir-5150"}, ("assault",), True, "support", True, 1)


async def fill(path: Path, keyring: Keyring) -> ChatKey:
    chat = ChatKey(keyring.chat_key("telegram", 42))
    async with SQLiteStore(path, keyring, matching=MatchingKey.new()) as store:
        await store.commit_turn(
            chat,
            draft=b'{"v":1}',
            report=REPORT,
            destinations=("staff_chat",),
            relay_chat="telegram:42",
            answer=Answer(7, b"the code, not yet shown"),
        )
        await store.enqueue("ROTA-0001", "person", "relay", {"chat": "telegram:42", "text": "are you safe now?"})
        await store.commit_turn(chat, naming=Naming("ROTA-0001", "handle", "tapir5150", "@Tapir5150", ()))
        await store.add_account(StaffAccount("sam", "support", "$argon2id$…", "JBSWY3DPEHPK3PXP"))
    return chat


async def test_rotation_reencrypts_everything_so_the_old_key_can_go(tmp_path: Path) -> None:
    old, new = Keyring.new_key(), Keyring.new_key()
    path = tmp_path / "db.sqlite3"
    chat = await fill(path, Keyring([old]))
    async with SQLiteStore(path, Keyring([new, old])) as store:
        assert await store.reencrypt() == {
            "drafts": 1,
            "reports": 1,
            "deliveries": 2,
            "relays": 1,
            "answers": 1,
            "secrets": 1,
            "identifiers": 1,
            "staff_accounts": 1,
            "thread": 1,
        }
        assert await store.load_draft(chat) == b'{"v":1}'  # the chat key is unchanged while the old key is listed
    async with SQLiteStore(path, Keyring([new])) as store:
        report = await store.get_report("ROTA-0001")
        assert report is not None and report.summary["account"] == "Tapir-5150"
        assert await store.relay_chat("ROTA-0001") == "telegram:42"
        assert await store.namings() == [("ROTA-0001", "handle", "tapir5150")]
        account = await store.account("sam")
        assert account is not None and account.totp == "JBSWY3DPEHPK3PXP", "the second factor survives rotation"
        assert [a.body for a in await store.unsent_answers(chat)] == [b"the code, not yet shown"]
        assert [text for _, text, _ in await store.thread("ROTA-0001")] == ["are you safe now?"]
        due = await store.claim_due()
        assert sorted(d.destination for d in due) == ["person", "staff_chat"]
        assert {d.reference for d in due} == {"ROTA-0001"}
        assert await store.erase_report(CODE) == "ROTA-0001"  # the code's slow hash needs no key
    with pytest.raises(KeyringError, match="does not open this database"):  # refused at start
        async with SQLiteStore(path, Keyring([old])):
            pass


def test_rotate_command_with_a_key_file(tmp_path: Path) -> None:
    import asyncio

    from storage import load_keyring

    first = load_keyring(None, tmp_path)
    asyncio.run(fill(tmp_path / "reachable.sqlite3", first))
    run = subprocess.run(
        [sys.executable, "-m", "bot", "keys", "rotate"],
        env={"REACHABLE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "re-encrypted under the newest of 2 key(s): 1 drafts, 1 reports, 2 deliveries, 1 relays" in run.stdout
    lines = (tmp_path / KEY_FILE).read_bytes().split()
    assert len(lines) == 2 and len(set(lines)) == 2
    assert Keyring([lines[1]]).decrypt(first.encrypt(b"old key kept second")) == b"old key kept second"

    async def only_the_new_key_opens_it() -> None:
        async with SQLiteStore(tmp_path / "reachable.sqlite3", Keyring([lines[0]])) as store:
            report = await store.get_report("ROTA-0001")
            assert report is not None and report.summary["account"] == "Tapir-5150"

    asyncio.run(only_the_new_key_opens_it())
