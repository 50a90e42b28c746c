"""Configuration: defaults, SIYU_ variables, and one clear line for bad values."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from siyu.config import ConfigError, load_settings


class TestSettings:
    def test_defaults_put_sqlite_in_the_data_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
        settings = load_settings()
        assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'siyu.db').resolve()}"
        assert (settings.host, settings.port) == ("127.0.0.1", 8000)

    def test_secret_key_is_generated_once_and_kept_private(self, tmp_path: Path) -> None:
        settings = load_settings(data_dir=tmp_path)
        first = settings.resolved_secret_key()
        assert load_settings(data_dir=tmp_path).resolved_secret_key() == first
        mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
        assert mode == 0o600

    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [
            ("SIYU_PORT", "eighty", "SIYU_PORT"),
            ("SIYU_PORT", "70000", "SIYU_PORT"),
            ("SIYU_DATABASE_URL", "mysql://root@localhost/x", "SIYU_DATABASE_URL"),
            ("SIYU_DATABASE_URL", "not a url", "SIYU_DATABASE_URL"),
            ("SIYU_SECRET_KEY", "short", "SIYU_SECRET_KEY"),
        ],
    )
    def test_bad_values_give_one_line_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert named in message
        assert "\n" not in message

    def test_unwritable_data_dir_is_one_line(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ConfigError, match="SIYU_DATA_DIR"):
            load_settings(data_dir=blocker / "sub").ensure_data_dir()
