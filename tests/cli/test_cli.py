"""The ``siyu`` command: scripts can drive it with --json; errors are one line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.cli.serve import describe_start, first_start
from siyu.config import load_settings
from siyu.db import Database
from siyu.kit.problems import Unauthorized
from siyu.tenancy.access import authenticate
from tests.conftest import DatabaseUnderTest, free_port

runner = CliRunner()


@pytest.fixture
def cli_env(
    tmp_path: Path, test_database: DatabaseUnderTest, db: Database, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The CLI pointed at the suite's (migrated) test database and a fresh data directory."""
    env = {"SIYU_DATA_DIR": str(tmp_path / "data"), "SIYU_DATABASE_URL": test_database.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def invoke_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


class TestCreateCommands:
    def test_merchant_store_staff_key_as_json(self, cli_env: dict[str, str], db: Database) -> None:
        # when
        merchant = invoke_json("merchant", "create", "--name", "一杯咖啡")
        store = invoke_json(
            "store",
            "create",
            "-m",
            merchant["id"],
            "--name",
            "徐汇店",
            "--kind",
            "franchise",
            "--lat",
            "31.19",
            "--lng",
            "121.44",
        )
        staff = invoke_json(
            "staff",
            "create",
            "-m",
            merchant["id"],
            "--login",
            f"li-{uuid.uuid4().hex[:6]}",
            "--role",
            "guide",
            "--password",
            "password-li",
            "--store",
            store["id"],
        )
        key = invoke_json("key", "create", "-m", merchant["id"], "--name", "pos", "--scope", "stores:read")
        # then
        assert merchant["id"].startswith("mch_")
        assert merchant["timezone"] == "Asia/Shanghai"
        assert store["kind"] == "franchise"
        assert store["latitude"] == 31.19
        assert staff["store_ids"] == [store["id"]]
        assert staff["role"] == "guide"
        assert key["scopes"] == ["stores:read"]
        assert key["secret"].startswith("sy_")
        with db.unit_of_work() as session:
            principal, _ = authenticate(session, secret=key["secret"], now=_now())
        assert principal.merchant_id == merchant["id"]

    def test_revoked_key_no_longer_authenticates(self, cli_env: dict[str, str], db: Database) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        key = invoke_json("key", "create", "-m", merchant["id"], "--name", "tmp")
        # when
        revoked = invoke_json("key", "revoke", key["id"])
        # then
        assert revoked["revoked_at"] is not None
        assert revoked["secret"] is None
        with db.unit_of_work() as session, pytest.raises(Unauthorized):
            authenticate(session, secret=key["secret"], now=_now())

    def test_provider_and_grant(self, cli_env: dict[str, str]) -> None:
        merchant = invoke_json("merchant", "create", "--name", "店")
        provider = invoke_json("provider", "create", "--name", "代运营")
        grant = invoke_json(
            "grant", "create", "-m", merchant["id"], "-p", provider["id"], "--scope", "stores:read"
        )
        revoked = invoke_json("grant", "revoke", "-m", merchant["id"], grant["id"])
        assert grant["scopes"] == ["stores:read"]
        assert revoked["revoked_at"] is not None

    def test_staff_password_is_generated_when_not_on_a_terminal(self, cli_env: dict[str, str]) -> None:
        merchant = invoke_json("merchant", "create", "--name", "店")
        result = runner.invoke(
            app,
            [
                "staff",
                "create",
                "-m",
                merchant["id"],
                "--login",
                f"g-{uuid.uuid4().hex[:6]}",
                "--role",
                "analyst",
            ],
        )
        assert result.exit_code == 0
        assert "generated password" in result.output


class TestErrors:
    def test_unknown_merchant_is_one_line(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["store", "create", "-m", "mch_nope", "--name", "x"])
        assert result.exit_code == 2
        assert "no merchant mch_nope" in result.output
        assert "Traceback" not in result.output

    def test_domain_error_is_one_line(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["merchant", "create", "--name", "x", "--timezone", "Mars/Olympus"])
        assert result.exit_code == 2
        assert "unknown time zone" in result.output

    @pytest.mark.parametrize(
        ("variable", "value"),
        [("SIYU_PORT", "notanumber"), ("SIYU_DATABASE_URL", "mysql://root@localhost/x")],
    )
    def test_bad_configuration_is_one_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv(variable, value)
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 2
        assert variable in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1

    def test_unreachable_database_is_one_line(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv(
            "SIYU_DATABASE_URL", f"postgresql+psycopg://nobody:secret@127.0.0.1:{free_port()}/x"
        )
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 2
        assert "cannot reach the database" in result.output
        assert "secret" not in result.output


class TestDb:
    def test_upgrade_twice_on_a_fresh_sqlite(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "d"))
        monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
        for _ in range(2):
            result = runner.invoke(app, ["db", "upgrade"])
            assert result.exit_code == 0, result.output
        assert (tmp_path / "d" / "siyu.db").exists()
        assert "up to date" in runner.invoke(app, ["db", "current"]).output


class TestFirstStart:
    def test_bootstrap_uses_the_deployment_credentials_once(self, tmp_path: Path, db: Database) -> None:
        # given
        secret = "sy_" + "k" * 40
        settings = load_settings(
            data_dir=tmp_path, bootstrap_password="owner-password-1", bootstrap_api_key=secret, console=False
        )
        # when
        first = first_start(settings, db)
        second = first_start(settings, db)
        # then
        assert first is not None
        assert second is None
        text = describe_start(settings, first)
        assert "owner-password-1" not in text
        assert secret not in text
        assert "SIYU_BOOTSTRAP_PASSWORD" in text
        with db.unit_of_work() as session:
            principal, _ = authenticate(session, secret=secret, now=_now())
        assert principal.merchant_id == first.merchant.id

    def test_generated_credentials_are_printed(self, tmp_path: Path, db: Database) -> None:
        settings = load_settings(data_dir=tmp_path, console=False)
        created = first_start(settings, db)
        assert created is not None
        assert created.key.secret is not None
        text = describe_start(settings, created)
        assert created.password in text
        assert created.key.secret in text
        assert "http://127.0.0.1:8000/console" in text


class TestServe:
    def test_serve_starts_on_a_fresh_data_directory(self, tmp_path: Path) -> None:
        """A real process: fresh SQLite, migrations, bootstrap, health answers."""
        # given
        port = free_port()
        env = {
            **os.environ,
            "SIYU_DATA_DIR": str(tmp_path / "data"),
            "SIYU_CONSOLE": "false",
            "COLUMNS": "200",
        }
        env.pop("SIYU_DATABASE_URL", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            # when
            healthy = False
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    healthy = (
                        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200
                    )
                except httpx.HTTPError:
                    time.sleep(0.2)
                if healthy:
                    break
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
        # then
        assert healthy, output
        assert "owner /" in output
        assert output.count("sy_") == 1, "the API key is printed once"
        assert (tmp_path / "data" / "siyu.db").exists()


def _now():  # type: ignore[no-untyped-def]
    from siyu.kit.clock import utcnow

    return utcnow()
