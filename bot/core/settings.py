"""Operator settings, read from ``REACHABLE_*`` environment variables (and an optional ``.env``).

Tests inject a mapping instead of the real environment: ``Settings.from_environ({...})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

MATCHING_KEY_FILE = "matching.key"
PREFIX = "REACHABLE_"
# A SOIT officer deals with sexual offences: offered only for these.
SOIT_FOR = ("assault", "drugged")


class Recipient(BaseModel):
    """Someone a person may choose to send their summary to, and how it reaches them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chat_id: int | None = None
    email: tuple[str, ...] = ()
    demo: bool = False  # `make demo`: shown in the console, labelled as a demo
    only_for: tuple[str, ...] = ()  # offered only when the report says one of these happened
    via_support: bool = False  # the support team passes it on

    @field_validator("email", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _addresses(value) if isinstance(value, str) else value

    def destinations(self, key: str) -> tuple[str, ...]:
        found = [f"{key}:chat"] if self.chat_id is not None else []
        if self.email:
            found.append(f"{key}:email")
        if self.demo:
            found.append(f"{key}:demo")
        return tuple(found)


def _addresses(value: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in value.split(",") if a.strip())


_EXTRA = TypeAdapter(dict[str, Recipient])
_INJECTED: ContextVar[bool] = ContextVar("reachable_settings_injected", default=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore", frozen=True)

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    data_dir: Path = Path("data")
    cache_dir: Path | None = None
    staff_chat_id: int | None = None
    staff_user_ids: str = ""
    # A SOIT officer's own destinations; or, with soit_via_support, the support team passes it on.
    soit_chat_id: int | None = None
    soit_email: str = ""
    soit_via_support: bool = False
    # More recipients a charity offers (REACHABLE_RECIPIENTS_EXTRA), as JSON:
    # {"galop": {"chat_id": -100..., "email": "a@b", "only_for": ["assault"]}};
    # their words are recipient.<key>.label and recipient.<key>.who in the responses.
    recipients_extra: str = ""
    # The matching contact (a trained caseworker the charity chooses; never the police by
    # default): told when two different people name the same person who hurt them. Naming who
    # did it is offered only when one is set. The matching key is kept apart from the data key.
    matching_chat_id: int | None = None
    matching_email: str = ""
    matching_key_file: Path | None = None
    # Across services: a network matching key the participating services share (made once with
    # `reachable match new-network-key`), and this service's name in its exports.
    matching_network_key_file: Path | None = None
    service_name: str = "reachable"
    # The Telegram library. python-telegram-bot by default: the process starts in about a second
    # in about 110 MiB; aiogram builds every model of the Bot API at import (about 2.5 s and 110 MiB
    # more) and handles more messages a second. Both handle many more than the 30 a second
    # Telegram lets a bot send (`make bench` measures all three).
    framework: Literal["aiogram", "ptb"] = "ptb"
    responses_dir: Path | None = None
    retention_days: int = Field(default=90, ge=1, le=3650)
    draft_hours: int = Field(default=24, ge=1, le=72)
    encryption_key: SecretStr | None = None
    # Empty: the embedded SQLite file in data_dir, for one process. postgresql://user:pass@host/db:
    # a PostgreSQL database several instances share (pip install 'reachable[postgres]'); then the
    # key must come from REACHABLE_ENCRYPTION_KEY, the same on every instance.
    database_url: SecretStr | None = None
    webhook_listen: str = "127.0.0.1:8080"
    webhook_secret: SecretStr | None = None
    webhook_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Rasa channels: where the action server listens, and Rasa's HTTP API for staff replies.
    rasa_actions_listen: str = "127.0.0.1:5055"
    rasa_url: str | None = None
    rasa_token: SecretStr | None = None
    # The web chat: where it listens (behind the charity's HTTPS proxy), and the neutral site
    # "Leave now" opens (GOV.UK's exit-this-page pattern uses BBC Weather).
    web_listen: str = "127.0.0.1:8081"
    # The staff inbox (reachable staff-web), behind the charity's HTTPS proxy like the web chat;
    # with staff_web, `reachable web` serves it too (a reply reaches the web chat in that process).
    staff_web_listen: str = "127.0.0.1:8082"
    staff_web: bool = False
    web_exit_url: str = "https://www.bbc.co.uk/weather"
    # `make demo`: the support team's inbox is shown in the console itself, labelled as a demo,
    # and whoever tries the bot plays the support worker too (console only; never for real use).
    demo_inbox: bool = False
    # The header the charity's proxy puts the client's address in (e.g. X-Forwarded-For: its
    # last entry is the one the proxy added). Empty: the address the connection comes from.
    # Used in memory only, to limit how fast one address may start new chats; never logged.
    web_client_address_header: str = ""
    # In polling mode, where `GET /healthz` answers (webhook and web modes serve it anyway).
    health_listen: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "reachable@localhost"
    smtp_to: str = ""
    smtp_starttls: bool = True
    smtp_ca_file: Path | None = None
    # Named to be noticed: summaries and the password would cross the network readable by anyone.
    smtp_insecure_plaintext: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (the process environment by default), ignoring ``.env``."""
        values = {k[len(PREFIX) :].lower(): v for k, v in (environ or {}).items() if k.startswith(PREFIX) and v}
        if environ is None:
            return cls()
        token = _INJECTED.set(True)
        try:
            return cls.model_validate(values)
        finally:
            _INJECTED.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _INJECTED.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings)

    @property
    def model_cache(self) -> Path:
        """Where the trained understanding model is kept between starts (nothing personal)."""
        return self.cache_dir or self.data_dir / "cache"

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (or be empty for the embedded SQLite file)")
        return value

    @property
    def shared_database(self) -> bool:
        """Whether the data lives in a database several instances share, not in data_dir."""
        return self.database_url is not None

    @field_validator("staff_user_ids")
    @classmethod
    def _user_ids(cls, value: str) -> str:
        for part in value.replace(" ", ",").split(","):
            if part.strip() and not part.strip().isdecimal():
                raise ValueError(f"must be Telegram user ids (numbers) separated by commas, not {part.strip()!r}")
        return value

    @property
    def staff_users(self) -> frozenset[int]:
        """Telegram user ids allowed to use staff commands in the staff chat."""
        return frozenset(int(p) for p in self.staff_user_ids.replace(" ", ",").split(",") if p.strip())

    @property
    def email_recipients(self) -> tuple[str, ...]:
        return _addresses(self.smtp_to)

    @property
    def recipients(self) -> dict[str, Recipient]:
        """Who a person may send a summary to, each with its own destinations; only those that
        have one. The support team; a SOIT officer, only for sexual offences and being drugged;
        and any a charity adds."""
        email = bool(self.smtp_host)
        support = Recipient(
            chat_id=self.staff_chat_id, email=self.email_recipients if email else (), demo=self.demo_inbox, only_for=()
        )
        if self.soit_via_support:
            soit = Recipient(chat_id=support.chat_id, email=support.email, only_for=SOIT_FOR, via_support=True)
        else:
            soit = Recipient(
                chat_id=self.soit_chat_id, email=_addresses(self.soit_email) if email else (), only_for=SOIT_FOR
            )
        found = {"support": support, "soit": soit}
        for key, extra in self.extra_recipients.items():
            found[key] = Recipient(chat_id=extra.chat_id, email=extra.email if email else (), only_for=extra.only_for)
        return {key: r for key, r in found.items() if r.destinations(key)}

    @field_validator("recipients_extra")
    @classmethod
    def _extra(cls, value: str) -> str:
        if value.strip():
            _EXTRA.validate_json(value)  # a clear error at start-up, not when someone chooses
        return value

    @property
    def extra_recipients(self) -> dict[str, Recipient]:
        if not self.recipients_extra.strip():
            return {}
        return _EXTRA.validate_json(self.recipients_extra)

    @property
    def destinations(self) -> tuple[str, ...]:
        """Every destination of every recipient: ``<recipient>:chat`` and ``<recipient>:email``."""
        return tuple(dict.fromkeys(d for key, r in self.recipients.items() for d in r.destinations(key)))

    @property
    def matching(self) -> Recipient | None:
        """The matching contact, if one is set (never offered as a recipient of a report)."""
        email = _addresses(self.matching_email) if self.smtp_host else ()
        if self.matching_chat_id is None and not email:
            return None
        return Recipient(chat_id=self.matching_chat_id, email=email)

    @property
    def matching_destinations(self) -> tuple[str, ...]:
        return self.matching.destinations("matching") if self.matching is not None else ()

    @property
    def matching_key_path(self) -> Path:
        """Where the matching key lives: REACHABLE_MATCHING_KEY_FILE, or beside the data key."""
        return self.matching_key_file or self.data_dir / MATCHING_KEY_FILE

    @property
    def staff_chats(self) -> dict[str, int]:
        """Each chat destination and its Telegram chat id (staff commands work in all of them),
        the matching contact's included."""
        chats = {f"{key}:chat": r.chat_id for key, r in self.recipients.items() if r.chat_id is not None}
        if self.matching_chat_id is not None:
            chats["matching:chat"] = self.matching_chat_id
        return chats

    @property
    def forwarding(self) -> bool:
        return bool(self.destinations)
