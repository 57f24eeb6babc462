import os
import re
import stat

from bot.settings import Settings
from tests.helpers import ROOT


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert set(Settings.model_fields) == documented


def test_defaults_and_empty_values_count_as_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    monkeypatch.setenv("USER_RATE_LIMIT", "")
    s = Settings()
    assert s.TELEGRAM_BOT_TOKEN is None
    assert s.USER_RATE_LIMIT == 10
    assert str(s.SMSGUARD_DB) == "data/cases.db"
    assert s.LOW_CONFIDENCE == 0.6


def test_token_never_shows_in_repr(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-TOKEN")
    s = Settings()
    assert "SECRET-TOKEN" not in repr(s) and "SECRET-TOKEN" not in str(s.model_dump())


def test_secret_is_generated_once_with_mode_600(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMSGUARD_DB", str(tmp_path / "db" / "cases.db"))
    s = Settings()
    key = s.user_hash_key()
    secret_file = tmp_path / "db" / "smsguard.secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert Settings().user_hash_key() == key and len(key) >= 32


def test_env_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("USER_RATE_LIMIT=3\nOPERATOR_IDS=1, 2\n")
    s = Settings()
    assert s.USER_RATE_LIMIT == 3
    assert s.operator_ids == {1, 2}
