"""The one settings object. Built once in the CLI and passed down; nothing else reads the environment."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE_NAME = "smsguard.secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # an empty value counts as unset (DESIGN)
        extra="ignore",
        case_sensitive=True,
    )

    SMSGUARD_DB: Path = Path("data/cases.db")
    SMSGUARD_SECRET: SecretStr | None = None
    STORE_RAW_TEXT: bool = False
    RAW_TEXT_TTL_MINUTES: int = Field(default=1440, ge=0)
    RETENTION_DAYS: int = Field(default=180, ge=1)
    USER_RATE_LIMIT: int = Field(default=10, ge=1)
    LOW_CONFIDENCE: float = Field(default=0.6, ge=0.0, le=1.0)
    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_BASE_URL: str = "https://api.telegram.org/bot"
    TELEGRAM_BASE_FILE_URL: str = "https://api.telegram.org/file/bot"
    TELEGRAM_RATE_LIMIT: float = Field(default=30, gt=0)
    TELEGRAM_WEBHOOK_URL: str | None = None
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None
    TELEGRAM_WEBHOOK_LISTEN: str = "127.0.0.1:8443"
    OPERATOR_IDS: str = ""
    WECHAT_TOKEN: SecretStr | None = None
    WECHAT_APP_ID: str | None = None
    WECHAT_AES_KEY: SecretStr | None = None

    @property
    def operator_ids(self) -> frozenset[int]:
        return frozenset(int(part) for part in self.OPERATOR_IDS.replace(" ", "").split(",") if part)

    def user_hash_key(self) -> bytes:
        """The key for hashing user ids: the setting, else a file beside the database made on first use."""
        if self.SMSGUARD_SECRET is not None:
            return self.SMSGUARD_SECRET.get_secret_value().encode()
        path = self.SMSGUARD_DB.parent / SECRET_FILE_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write the key in full to a private temporary file, then link it into place: two processes
            # starting together end with one key, and nobody ever reads a half-written (empty) one.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                os.chmod(tmp, 0o600)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        key = path.read_text().strip()
        if not key:
            raise ValueError(f"{path} is empty: delete it to generate a new key, or set SMSGUARD_SECRET")
        return key.encode()
