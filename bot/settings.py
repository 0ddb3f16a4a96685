"""Operator settings, read from ``REACHABLE_*`` environment variables (and an optional ``.env``).

Tests inject a mapping instead of the real environment: ``Settings.from_environ({...})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "REACHABLE_"
_INJECTED: ContextVar[bool] = ContextVar("reachable_settings_injected", default=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore", frozen=True)

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    data_dir: Path = Path("data")
    cache_dir: Path | None = None
    staff_chat_id: int | None = None
    staff_user_ids: str = ""
    framework: Literal["aiogram", "ptb"] = "aiogram"
    responses_dir: Path | None = None
    retention_days: int = Field(default=90, ge=1, le=3650)
    draft_hours: int = Field(default=24, ge=1, le=72)
    encryption_key: SecretStr | None = None
    webhook_listen: str = "127.0.0.1:8080"
    webhook_secret: SecretStr | None = None
    webhook_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
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
        return tuple(a.strip() for a in self.smtp_to.split(",") if a.strip())

    @property
    def destinations(self) -> tuple[str, ...]:
        """Where consented summaries go: the staff chat and/or email."""
        found = []
        if self.staff_chat_id is not None:
            found.append("staff_chat")
        if self.smtp_host and self.email_recipients:
            found.append("email")
        return tuple(found)

    @property
    def forwarding(self) -> bool:
        return bool(self.destinations)
