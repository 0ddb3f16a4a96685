"""Naming who did it: offered after a report about a harm is kept, never pushed; typed in the
person's words and normalised so two spellings of one person match; sealed at rest and compared
only as a keyed digest; a match told once to the matching contact and to each person who
allowed replies; one person twice is not a match; withdrawing takes the naming with it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.settings import Settings
from bot.ops.doctor import OK, WARN, matching_key
from fakes.postgres import PostgresServer
from flows import Engine, EngineConfig
from flows.effects import ForgetNames, NameOffender, StoreReport
from flows.events import Choice, Relayed, Unlocked
from flows.identifiers import identify
from responses import Renderer, Responses
from storage import DB_FILE, ChatKey, CodeHasher, Conflict, Keyring, NewReport, SQLiteStore, load_keyring
from storage.backup import back_up
from storage.base import Naming
from storage.matching import MatchingKey
from storage.memory import MemoryStore
from storage.postgres import PostgresStore
from storage.rules import RuleStore
from tests.conftest import Clock
from tests.helpers import Chat, FixedTokens, text_of
from tests.test_report import answer_everything

MATCHING = ("matching:chat",)


@pytest.fixture
def naming_chat(responses: Responses, renderer: Renderer) -> Chat:
    engine = Engine(responses, EngineConfig(forwarding=True, matching=True), tokens=FixedTokens())
    return Chat(engine, renderer)


def kept(chat: Chat) -> StoreReport:
    answer_everything(chat)
    chat.tap("Yes, it's right")
    chat.tap("Yes, keep it")
    chat.tap("Don't send it")
    return next(e for e in chat.effects if isinstance(e, StoreReport))


def test_after_the_code_naming_who_did_it_is_offered_in_plain_words_and_can_be_declined(naming_chat: Chat) -> None:
    report = kept(naming_chat)
    said = text_of(naming_chat.said[-2:])
    assert f"Secret code: {report.code}" in said, "the code comes first"
    assert "optional" in said and "sealed" in said and "never who you are" in said
    assert "Add who did it (optional)" in naming_chat.labels
    naming_chat.tap("Not now")
    assert naming_chat.step == "menu" and naming_chat.state.unlocked == ""
    assert not [e for e in naming_chat.effects if isinstance(e, NameOffender)]


def test_without_a_matching_contact_nothing_is_offered(chat: Chat) -> None:
    answer_everything(chat)
    chat.tap("Yes, it's right")
    chat.tap("Yes, keep it")
    assert chat.step == "menu"
    assert "Add who did it (optional)" not in chat.labels


def test_a_profile_typed_in_the_persons_words_becomes_one_naming_of_the_kept_report(naming_chat: Chat) -> None:
    report = kept(naming_chat)
    naming_chat.tap("Add who did it (optional)")
    naming_chat.tap("An app and profile name")
    assert "Which app" in naming_chat.said[-1].text
    naming_chat.send("Tom_88 on Grindr")
    [named] = [e for e in naming_chat.effects if isinstance(e, NameOffender)]
    assert [r.message for r in named.added] == ["match.added", "match.more"], "said once it is written"
    assert (named.reference, named.kind, named.canonical) == (report.reference, "app", "grindr:tom88")
    assert naming_chat.step == "match.more"
    naming_chat.send(Choice(step="match.more", option="finished"))
    assert naming_chat.step == "menu"


def test_what_cannot_be_a_phone_number_is_asked_again_and_urgent_words_get_help_first(naming_chat: Chat) -> None:
    kept(naming_chat)
    naming_chat.tap("Add who did it (optional)")
    naming_chat.tap("A phone number")
    assert "does not look like a phone number" in text_of(naming_chat.send("his mate"))
    assert naming_chat.step == "match.phone"
    said = text_of(naming_chat.send("hes not breathing"))
    assert "999" in said
    assert not [e for e in naming_chat.effects if isinstance(e, NameOffender)]


@pytest.mark.parametrize(
    ("kind", "one", "other"),
    [
        ("app", "Grindr: Tom_88", "tom 88 on grindr"),
        ("phone", "07700 900123", "+44 7700 900 123"),
        ("email", "Tom@Example.com", " tom@example.com"),
        ("handle", "@Tom.88", "tom88"),
        ("name", "Dan, Vauxhall", "vauxhall dan"),
    ],
)
def test_two_spellings_of_one_person_are_one_canonical_form(kind: str, one: str, other: str) -> None:
    first, second = identify(kind, one, ["Grindr"]), identify(kind, other, ["Grindr"])
    assert first is not None and second is not None
    assert first.canonical == second.canonical


def test_with_the_code_the_person_can_add_or_remove_who_they_named(naming_chat: Chat) -> None:
    naming_chat.send(Unlocked(reference="TEST-0001", status="kept", what=("assault",), named=1))
    assert {"Add who did it (optional)", "Remove who I named"} <= set(naming_chat.labels)
    said = text_of(naming_chat.tap("Remove who I named"))
    [removed] = [e for e in naming_chat.effects if isinstance(e, ForgetNames)]
    assert removed.reference == "TEST-0001"
    assert "removed" not in said, "said only once the removal is written (the effect's own replies)"


def test_told_of_a_match_the_person_chooses_what_happens_next(naming_chat: Chat) -> None:
    said = text_of(naming_chat.send(Relayed("TEST-0001", "matched")))
    assert "Someone else has named the same person" in said and "TEST-0001" in said
    assert naming_chat.labels[:3] == ["Talk to the caseworker", "Go to the police, with support", "Nothing for now"]


# ---------------------------------------------------------------- storage, on every backend
def _report(reference: str, code: str, allow_reply: bool = True) -> NewReport:
    return NewReport(reference, code, {"what": ("drugged",)}, ("drugged",), True, "support", allow_reply, 1)


def _store(
    backend: str, request: pytest.FixtureRequest, keyring: Keyring, hasher: CodeHasher, clock: Clock | None = None
) -> RuleStore:
    key, now = MatchingKey.new(), clock or Clock()
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return PostgresStore(server.new_database(), keyring, hasher=hasher, matching=key, clock=now)
    if backend == "sqlite":
        folder: Path = request.getfixturevalue("tmp_path")
        return SQLiteStore(folder / "db.sqlite3", keyring, hasher=hasher, matching=key, clock=now)
    return MemoryStore(hasher=hasher, matching=key, clock=now)


@pytest.mark.parametrize("backend", ["sqlite", "memory", "postgresql"])
async def test_two_people_naming_one_profile_is_one_notice_and_one_relay_message_each(
    backend: str, request: pytest.FixtureRequest, keyring: Keyring, hasher: CodeHasher
) -> None:
    async with _store(backend, request, keyring, hasher) as store:
        alex, sam = ChatKey(b"a" * 32), ChatKey(b"s" * 32)
        await store.commit_turn(
            alex,
            report=_report("RPT-A", "C0DE-AAAA-AAAA-AAAA"),
            destinations=("support:chat",),
            relay_chat="telegram:1",
        )
        await store.commit_turn(
            sam, report=_report("RPT-S", "C0DE-SSSS-SSSS-SSSS"), destinations=("support:chat",), relay_chat="web:2"
        )
        await store.commit_turn(alex, naming=Naming("RPT-A", "app", "grindr:tom88", "Grindr: Tom_88", MATCHING))
        await store.commit_turn(alex, naming=Naming("RPT-A", "app", "grindr:tom88", "tom 88 grindr", MATCHING))
        assert [o for o in await store.claim_due() if o.kind in ("match", "matched")] == [], "one person twice"
        await store.commit_turn(sam, naming=Naming("RPT-S", "app", "grindr:tom88", "tom 88 on grindr", MATCHING))
        due = await store.claim_due()
        [notice] = [o for o in due if o.kind == "match"]
        assert notice.destination == "matching:chat" and notice.data["references"] == ["RPT-A", "RPT-S"]
        assert "app: tom 88 on grindr" in notice.data["named"]
        told = sorted((o.reference, o.data["chat"]) for o in due if o.kind == "matched")
        assert told == [("RPT-A", "telegram:1"), ("RPT-S", "web:2")]
        await store.commit_turn(sam, naming=Naming("RPT-S", "app", "grindr:tom88", "Tom88", MATCHING))
        assert [o for o in await store.claim_due() if o.kind in ("match", "matched")] == [], "told once"
        assert await store.named("RPT-A") == 2


@pytest.mark.parametrize("backend", ["sqlite", "memory", "postgresql"])
async def test_withdrawing_a_matched_report_removes_its_namings_and_tells_the_matching_contact(
    backend: str, request: pytest.FixtureRequest, keyring: Keyring, hasher: CodeHasher
) -> None:
    async with _store(backend, request, keyring, hasher) as store:
        alex, sam = ChatKey(b"a" * 32), ChatKey(b"s" * 32)
        for key, reference in ((alex, "RPT-A"), (sam, "RPT-S")):
            await store.commit_turn(key, report=_report(reference, f"C0DE-{reference[-1] * 4}-AAAA-AAAA"))
            await store.commit_turn(key, naming=Naming(reference, "phone", "+447700900123", "07700 900123", MATCHING))
        for item in await store.claim_due():
            await store.delivered(item.id)
        assert await store.erase_by_reference("RPT-A") == "RPT-A"
        assert await store.named("RPT-A") == 0
        withdrawn = [(o.reference, o.destination) for o in await store.claim_due() if o.kind == "withdrawn"]
        assert ("RPT-A", "matching:chat") in withdrawn
        with pytest.raises(Conflict):
            await store.commit_turn(alex, naming=Naming("RPT-A", "phone", "+447700900123", "x", MATCHING))


async def test_the_database_and_its_backup_hold_no_identifier_in_the_clear(
    tmp_path: Path, keyring: Keyring, hasher: CodeHasher
) -> None:
    data = tmp_path / "data"
    async with SQLiteStore(data / DB_FILE, keyring, hasher=hasher, matching=MatchingKey.new()) as store:
        await store.commit_turn(ChatKey(b"a" * 32), report=_report("RPT-A", "C0DE-AAAA-AAAA-AAAA"))
        naming = Naming("RPT-A", "phone", "+447700900123", "07700 900123", MATCHING)
        await store.commit_turn(ChatKey(b"a" * 32), naming=naming)
        backup = tmp_path / "backup.sqlite3"
        assert back_up(data, backup) == 1
    files = b"".join(p.read_bytes() for p in [*data.iterdir(), backup] if p.is_file())
    for secret in (b"447700900123", b"07700 900123", b"7700900123", b"07700"):
        assert secret not in files
    with sqlite3.connect(backup) as db:
        assert db.execute("SELECT count(*) FROM identifiers").fetchone() == (1,), "the naming is in it, sealed"


@pytest.mark.parametrize("backend", ["sqlite", "memory", "postgresql"])
async def test_a_naming_goes_when_its_report_expires(
    backend: str, request: pytest.FixtureRequest, keyring: Keyring, hasher: CodeHasher, clock: Clock
) -> None:
    async with _store(backend, request, keyring, hasher, clock) as store:
        await store.commit_turn(ChatKey(b"a" * 32), report=_report("RPT-A", "C0DE-AAAA-AAAA-AAAA"))
        await store.commit_turn(ChatKey(b"a" * 32), naming=Naming("RPT-A", "handle", "tom88", "@tom88", MATCHING))
        clock.now += 89 * 86400
        await store.purge_expired()
        assert await store.named("RPT-A") == 1
        clock.now += 2 * 86400
        assert (await store.purge_expired()).reports == 1
        assert await store.namings() == []


# ---------------------------------------------------------------- across services
async def reachable(*argv: str) -> int:
    """The command, as an operator runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def _service(data: Path, reports: dict[str, tuple[str, str, str]], hasher: CodeHasher) -> None:
    """A service's own database: each report names someone (kind, canonical, shown)."""
    data.mkdir()
    store = SQLiteStore(
        data / DB_FILE, load_keyring(None, data), hasher=hasher, matching=MatchingKey.load(data / "m.key")
    )
    async with store:
        for n, (reference, (kind, canonical, shown)) in enumerate(reports.items()):
            key = ChatKey(bytes([n]) * 32)
            await store.commit_turn(key, report=_report(reference, f"C0DE-{n:04d}-AAAA-AAAA"))
            await store.commit_turn(key, naming=Naming(reference, kind, canonical, shown, MATCHING))


async def test_exports_from_three_services_combine_into_the_right_matches_and_hold_no_identifier(
    tmp_path: Path, hasher: CodeHasher, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    phone, profile = ("phone", "+447700900123", "07700 900123"), ("app", "grindr:tom88", "Grindr: Tom_88")
    await _service(
        tmp_path / "galop", {"GAL-0001": phone, "GAL-0002": ("email", "x@example.com", "x@example.com")}, hasher
    )
    await _service(tmp_path / "clinic", {"CLN-0001": phone, "CLN-0002": profile}, hasher)
    await _service(tmp_path / "charity", {"CHR-0001": profile}, hasher)
    network = tmp_path / "network.key"
    assert await reachable("match", "new-network-key", str(network)) == 0
    assert await reachable("match", "new-network-key", str(network)) == 2, "made once, never overwritten"
    exports = []
    for service in ("galop", "clinic", "charity"):
        monkeypatch.setenv("REACHABLE_DATA_DIR", str(tmp_path / service))
        monkeypatch.setenv("REACHABLE_MATCHING_NETWORK_KEY_FILE", str(network))
        monkeypatch.setenv("REACHABLE_SERVICE_NAME", service)
        exports.append(tmp_path / f"{service}.json")
        assert await reachable("match", "export", "--out", str(exports[-1])) == 0
    written = b"".join(path.read_bytes() for path in exports)
    for identifier in (b"7700900123", b"07700", b"tom88", b"Tom_88", b"grindr", b"x@example.com"):
        assert identifier not in written
    assert await reachable("match", "combine", *map(str, exports), "--out", str(tmp_path / "found")) == 0
    found = {
        s: json.loads((tmp_path / "found" / f"{s}.matches.json").read_text()) for s in ("galop", "clinic", "charity")
    }
    assert found["galop"]["matches"] == [{"reference": "GAL-0001", "matched": {"clinic": ["CLN-0001"]}}]
    clinic = {m["reference"]: m["matched"] for m in found["clinic"]["matches"]}
    assert clinic == {"CLN-0001": {"galop": ["GAL-0001"]}, "CLN-0002": {"charity": ["CHR-0001"]}}
    assert found["charity"]["matches"] == [{"reference": "CHR-0001", "matched": {"clinic": ["CLN-0002"]}}]
    assert "galop: 1 reference(s) matched" in capsys.readouterr().out


async def test_a_new_matching_key_keeps_every_match(
    tmp_path: Path, hasher: CodeHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("REACHABLE_DATA_DIR", str(data))
    old = MatchingKey.load(data / "matching.key")
    store = SQLiteStore(data / DB_FILE, load_keyring(None, data), hasher=hasher, matching=old)
    async with store:
        await store.commit_turn(ChatKey(b"a" * 32), report=_report("RPT-A", "C0DE-AAAA-AAAA-AAAA"))
        await store.commit_turn(ChatKey(b"a" * 32), naming=Naming("RPT-A", "handle", "tom88", "@tom88", MATCHING))
    assert await reachable("match", "rotate-key") == 0
    new = MatchingKey.load(data / "matching.key", create=False)
    assert new != old
    store = SQLiteStore(data / DB_FILE, load_keyring(None, data), hasher=hasher, matching=new)
    async with store:
        await store.commit_turn(ChatKey(b"s" * 32), report=_report("RPT-S", "C0DE-SSSS-SSSS-SSSS"))
        await store.commit_turn(ChatKey(b"s" * 32), naming=Naming("RPT-S", "handle", "tom88", "tom88", MATCHING))
        assert [o.data["references"] for o in await store.claim_due() if o.kind == "match"] == [["RPT-A", "RPT-S"]]


def test_the_doctor_warns_while_the_matching_key_sits_beside_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    beside = Settings.from_environ({"REACHABLE_DATA_DIR": str(data), "REACHABLE_MATCHING_CHAT_ID": "-100123"})
    MatchingKey.load(beside.matching_key_path)
    [found] = matching_key(beside)
    assert found.status == WARN and "every phone number could be tried" in found.text
    apart = tmp_path / "secrets" / "matching.key"
    MatchingKey.load(apart)
    settings = Settings.from_environ(
        {
            "REACHABLE_DATA_DIR": str(data),
            "REACHABLE_MATCHING_CHAT_ID": "-100123",
            "REACHABLE_MATCHING_KEY_FILE": str(apart),
        }
    )
    assert [f.status for f in matching_key(settings)] == [OK]
    assert matching_key(Settings.from_environ({"REACHABLE_DATA_DIR": str(data)})) == [], "no matching contact"


def test_a_number_written_in_polish_or_romanian_is_tried_in_that_country_after_the_uk() -> None:
    polish = identify("phone", "600 123 456", locale="pl")
    assert polish is not None and polish.canonical == "+48600123456"
    same = identify("phone", "+48 600 123 456", locale="en"), identify("phone", "+48600123456", locale="ro")
    assert same[0] is not None and same[1] is not None and same[0].canonical == same[1].canonical
    romanian = identify("phone", "0722 123 456", locale="ro")
    assert romanian is not None and romanian.canonical == "+40722123456"
    british = identify("phone", "020 7946 0000", locale="pl")
    assert british is not None and british.canonical == "+442079460000", "the UK first: people write from London"
