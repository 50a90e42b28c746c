"""The ``siyu`` command: scripts can drive it with --json; errors are one line, never a traceback.

The commands run against the suite's test database (``tests/conftest.py``): a fresh SQLite file,
or with ``SIYU_TEST_DATABASE_URL`` a PostgreSQL schema of this run's own, built from the migrations
and dropped at the end. Tables are emptied after each test; logins are unique anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from siyu.cli import main as cli_main
from siyu.cli.main import app
from siyu.cli.serve import announce, base_url, describe_start, first_start
from siyu.config import load_settings
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.problems import Unauthorized
from siyu.tenancy import facade
from siyu.tenancy.access import authenticate
from siyu.tenancy.scopes import ALL_PROVIDER_SCOPES, MERCHANT_SCOPES, sorted_scopes
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


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No database URL: the CLI uses (and migrates) a SQLite file in a fresh data directory."""
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    return tmp_path / "d"


def invoke_json(*args: str, stdin: str | None = None) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_line(output: str) -> str:
    """The whole output, checked to be exactly one ``error: …`` line without a traceback."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def now() -> datetime:
    return utcnow()


class TestCreateCommands:
    def test_merchant_store_staff_key_as_json(self, cli_env: dict[str, str], db: Database) -> None:
        # when
        merchant = invoke_json("merchant", "create", "--name", "一杯咖啡")
        store = invoke_json(
            "store", "create", "-m", merchant["id"], "--name", "徐汇店", "--kind", "franchise",
            "--city", "上海", "--lat", "31.19", "--lng", "121.44",
        )  # fmt: skip
        login = unique("li")
        staff = invoke_json(
            "staff", "create", "-m", merchant["id"], "--login", login, "--role", "guide",
            "--password", "password-li", "--store", store["id"],
        )  # fmt: skip
        key = invoke_json("key", "create", "-m", merchant["id"], "--name", "pos", "--scope", "stores:read")
        # then
        assert merchant["id"].startswith("mch_")
        assert merchant["timezone"] == "Asia/Shanghai"
        assert merchant["currency"] == "CNY"
        assert datetime.fromisoformat(merchant["created_at"]).tzinfo is not None
        assert store["kind"] == "franchise"
        assert store["code"] == "S0001"
        assert (store["latitude"], store["longitude"]) == (31.19, 121.44)
        assert staff["login"] == login
        assert staff["store_ids"] == [store["id"]]
        assert staff["role"] == "guide"
        assert "password" not in staff, "a password the user typed is not echoed"
        assert key["scopes"] == ["stores:read"]
        assert key["secret"].startswith("sy_")
        with db.unit_of_work() as session:
            principal, _ = authenticate(session, secret=key["secret"], now=now())
            assert facade.login(session, login=login, password="password-li") is not None
        assert principal.merchant_id == merchant["id"]

    def test_keys_default_to_every_scope_their_owner_can_hold(self, cli_env: dict[str, str]) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        provider = invoke_json("provider", "create", "--name", "代运营")
        # when
        merchant_key = invoke_json("key", "create", "-m", merchant["id"], "--name", "all")
        provider_key = invoke_json("key", "create", "-p", provider["id"], "--name", "all")
        # then
        assert merchant_key["scopes"] == sorted_scopes(MERCHANT_SCOPES)
        assert provider_key["scopes"] == sorted_scopes(ALL_PROVIDER_SCOPES)
        assert provider_key["provider_id"] == provider["id"]

    def test_key_secret_is_shown_once_with_a_warning(self, cli_env: dict[str, str]) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        # when
        result = runner.invoke(app, ["key", "create", "-m", merchant["id"], "--name", "pos"])
        # then
        assert result.exit_code == 0, result.output
        assert len(re.findall(r"sy_[A-Za-z0-9_-]{20,}", result.output)) == 1
        assert "cannot be shown again" in result.output

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
            authenticate(session, secret=key["secret"], now=now())

    def test_provider_and_grant(self, cli_env: dict[str, str]) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        provider = invoke_json("provider", "create", "--name", "代运营")
        # when
        grant = invoke_json(
            "grant", "create", "-m", merchant["id"], "-p", provider["id"], "--scope", "stores:read"
        )
        revoked = invoke_json("grant", "revoke", "-m", merchant["id"], grant["id"])
        # then
        assert grant["scopes"] == ["stores:read"]
        assert grant["revoked_at"] is None
        assert revoked["revoked_at"] is not None

    def test_staff_password_is_generated_when_not_on_a_terminal(
        self, cli_env: dict[str, str], db: Database
    ) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        login = unique("g")
        # when
        staff = invoke_json("staff", "create", "-m", merchant["id"], "--login", login, "--role", "analyst")
        # then
        assert len(staff["password"]) >= 12
        with db.unit_of_work() as session:
            assert facade.login(session, login=login, password=staff["password"]) is not None

    def test_staff_password_is_asked_for_on_a_terminal(
        self, cli_env: dict[str, str], db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        login = unique("op")
        monkeypatch.setattr(cli_main, "stdin_is_terminal", lambda: True)
        # when
        result = runner.invoke(
            app,
            ["staff", "create", "-m", merchant["id"], "--login", login, "--role", "operator"],
            input="typed-password\ntyped-password\n",
        )
        # then
        assert result.exit_code == 0, result.output
        assert "typed-password" not in result.output, "hidden input"
        with db.unit_of_work() as session:
            assert facade.login(session, login=login, password="typed-password") is not None


class TestErrors:
    def test_unknown_merchant_is_one_line(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["store", "create", "-m", "mch_nope", "--name", "x"])
        assert result.exit_code == 2
        assert error_line(result.output) == "error: no merchant mch_nope"

    def test_unknown_provider_is_one_line(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["key", "create", "-p", "prv_nope", "--name", "x"])
        assert result.exit_code == 2
        assert error_line(result.output) == "error: no provider prv_nope"

    def test_key_needs_exactly_one_owner(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["key", "create", "--name", "x"])
        assert result.exit_code == 2
        assert "exactly one of --merchant or --provider" in error_line(result.output)

    def test_domain_error_is_one_line(self, cli_env: dict[str, str]) -> None:
        result = runner.invoke(app, ["merchant", "create", "--name", "x", "--timezone", "Mars/Olympus"])
        assert result.exit_code == 2
        assert "unknown time zone" in error_line(result.output)

    def test_conflict_is_one_line(self, cli_env: dict[str, str]) -> None:
        # given
        merchant = invoke_json("merchant", "create", "--name", "店")
        login = unique("dup")
        args = ["staff", "create", "-m", merchant["id"], "--login", login, "--role", "guide"]
        invoke_json(*args, "--password", "password-1")
        # when
        result = runner.invoke(app, [*args, "--password", "password-2"])
        # then
        assert result.exit_code == 2
        assert "is taken" in error_line(result.output)

    def test_input_that_looks_like_markup_is_shown_literally(self, cli_env: dict[str, str]) -> None:
        # when
        bad = runner.invoke(app, ["merchant", "create", "--name", "x", "--timezone", "[/]"])
        merchant = invoke_json("merchant", "create", "--name", "店")
        good = runner.invoke(app, ["store", "create", "-m", merchant["id"], "--name", "[red]x"])
        # then
        assert bad.exit_code == 2
        assert "'[/]'" in error_line(bad.output)
        assert good.exit_code == 0, good.output
        assert "[red]x" in good.output

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
        assert variable in error_line(result.output)

    def test_unreachable_database_is_one_line(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv(
            "SIYU_DATABASE_URL", f"postgresql+psycopg://nobody:secret@127.0.0.1:{free_port()}/x"
        )
        for command in (["db", "upgrade"], ["merchant", "create", "--name", "x"], ["db", "current"]):
            result = runner.invoke(app, command)
            assert result.exit_code == 2, command
            line = error_line(result.output)
            assert "nobody:***@127.0.0.1" in line
            assert "secret" not in line

    def test_unexpected_error_is_one_line_with_exit_code_1(
        self,
        cli_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # given
        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(facade, "create_provider", broken)
        monkeypatch.setattr(sys, "argv", ["siyu", "provider", "create", "--name", "x"])
        # when
        with pytest.raises(SystemExit) as exited:
            cli_main.run()
        # then
        assert exited.value.code == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "unexpected RuntimeError: boom" in error_line(captured.err)


class TestDb:
    def test_upgrade_twice_on_a_fresh_sqlite(self, empty_data_dir: Path) -> None:
        # given
        before = runner.invoke(app, ["db", "current"])
        assert "no database yet" in before.output
        assert not (empty_data_dir / "siyu.db").exists(), "`db current` changes nothing"
        # when
        first = runner.invoke(app, ["db", "upgrade"])
        second = runner.invoke(app, ["db", "upgrade"])
        # then
        assert first.exit_code == 0, first.output
        assert "migrated from an empty database to revision" in first.output
        assert second.exit_code == 0, second.output
        assert "already at the newest revision" in second.output
        assert (empty_data_dir / "siyu.db").exists()
        assert "up to date" in runner.invoke(app, ["db", "current"]).output

    def test_commands_migrate_a_fresh_data_directory(self, empty_data_dir: Path) -> None:
        merchant = invoke_json("merchant", "create", "--name", "店")
        assert merchant["id"].startswith("mch_")
        assert (empty_data_dir / "siyu.db").exists()

    def test_a_schema_newer_than_this_version_is_refused(self, empty_data_dir: Path) -> None:
        # given: a database migrated by a (pretend) newer Siyu
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        database = Database(f"sqlite:///{empty_data_dir / 'siyu.db'}")
        with database.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        database.dispose()
        # when
        upgrade = runner.invoke(app, ["db", "upgrade"])
        create = runner.invoke(app, ["merchant", "create", "--name", "x"])
        current = runner.invoke(app, ["db", "current"])
        # then
        assert upgrade.exit_code == create.exit_code == 2
        assert "does not know" in error_line(upgrade.output)
        assert "does not know" in error_line(create.output)
        assert current.exit_code == 0
        assert "unknown to this version" in current.output


class TestFirstStart:
    def test_bootstrap_uses_the_deployment_credentials_once(
        self,
        tmp_path: Path,
        db: Database,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # given
        secret = "sy_" + uuid.uuid4().hex + "k" * 8
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SIYU_BOOTSTRAP_PASSWORD", "owner-password-1")
        monkeypatch.setenv("SIYU_BOOTSTRAP_API_KEY", secret)
        monkeypatch.setenv("SIYU_CONSOLE", "false")
        settings = load_settings()
        # when
        first = announce(settings, db)
        first_output = capsys.readouterr().out
        second = announce(settings, db)
        second_output = capsys.readouterr().out
        # then
        assert first is not None
        assert second is None
        assert "first start" in first_output
        assert "owner-password-1" not in first_output
        assert secret not in first_output
        assert "from SIYU_BOOTSTRAP_PASSWORD" in first_output
        assert "from SIYU_BOOTSTRAP_API_KEY" in first_output
        assert first.merchant.id in first_output
        assert "owner" not in second_output
        assert "/docs" in second_output
        with db.unit_of_work() as session:
            principal, _ = authenticate(session, secret=secret, now=now())
            owner = facade.login(session, login="owner", password="owner-password-1")
        assert principal.merchant_id == first.merchant.id
        assert owner is not None
        assert owner.merchant_id == first.merchant.id

    def test_generated_credentials_are_printed(self, tmp_path: Path, db: Database) -> None:
        settings = load_settings(data_dir=tmp_path)
        created = first_start(settings, db)
        assert created is not None
        assert created.key.secret is not None
        text = describe_start(settings, created)
        assert f"owner / {created.password}" in text
        assert text.count(created.key.secret) == 1
        assert "http://127.0.0.1:8000/console" in text
        assert "http://127.0.0.1:8000/docs" in text
        assert "shown this once" in text

    @pytest.mark.parametrize(
        ("host", "url"),
        [
            ("127.0.0.1", "http://127.0.0.1:8080"),
            ("0.0.0.0", "http://127.0.0.1:8080"),
            ("::", "http://[::1]:8080"),
            ("siyu.example", "http://siyu.example:8080"),
        ],
    )
    def test_urls_a_browser_can_open(self, tmp_path: Path, host: str, url: str) -> None:
        assert base_url(load_settings(data_dir=tmp_path, host=host, port=8080)) == url


COMMANDS = [
    ["serve"],
    ["db", "upgrade"],
    ["db", "current"],
    ["provider", "create"],
    ["merchant", "create"],
    ["store", "create"],
    ["staff", "create"],
    ["key", "create"],
    ["key", "revoke"],
    ["grant", "create"],
    ["grant", "revoke"],
]


class TestHelp:
    @pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
    def test_every_command_explains_itself_with_an_example(self, command: list[str]) -> None:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        assert "Example" in result.output


class TestServe:
    @pytest.mark.parametrize("workers", [1, 2])
    def test_serve_starts_on_a_fresh_data_directory(self, tmp_path: Path, workers: int) -> None:
        """A real process: fresh SQLite, migrations, bootstrap, health answers, the printed key works
        (served by one process, or by worker processes that build the app from the environment)."""
        # given
        port = free_port()
        env = {
            **os.environ,
            "SIYU_DATA_DIR": str(tmp_path / "data"),
            "SIYU_CONSOLE": "false",
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        for variable in ("SIYU_DATABASE_URL", "SIYU_BOOTSTRAP_PASSWORD", "SIYU_BOOTSTRAP_API_KEY"):
            env.pop(variable, None)
        process = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
        reader.start()
        base = f"http://127.0.0.1:{port}"
        healthy = False
        merchants_status = None
        try:
            # when
            # a liveness wait, not a speed check: two workers (each spawning its mirror sync child)
            # starting on a loaded 2-core machine took over 30 s once
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(httpx.HTTPError):
                    healthy = httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200
                if healthy:
                    break
                time.sleep(0.2)
            printed = re.search(r"API key\s+(sy_[A-Za-z0-9_-]+)", "".join(lines))
            if healthy and printed:
                merchants_status = httpx.get(
                    f"{base}/api/v1/merchants",
                    headers={"Authorization": f"Bearer {printed.group(1)}"},
                    timeout=5,
                ).status_code
        finally:
            process.terminate()
            try:  # uvicorn's supervisor stops its workers one by one: slow on a loaded machine
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            reader.join(timeout=10)
        output = "".join(lines)
        # then
        assert healthy, output
        assert "Login     owner / " in output
        assert len(re.findall(r"sy_[A-Za-z0-9_-]{20,}", output)) == 1, "the API key is printed once"
        assert merchants_status == 200, output
        assert (tmp_path / "data" / "siyu.db").exists()


class TestLifecycleCommands:
    def test_sweep_stages_and_flows(self, cli_env: dict[str, str], db: Database, client: Any) -> None:
        # given: a member whose only order is 100 days old, ingested back then
        from datetime import timedelta
        from zoneinfo import ZoneInfo

        from siyu.events.service import ingest

        with db.unit_of_work() as session:
            merchant = facade.create_merchant(session, name="生命周期")
        long_ago = utcnow() - timedelta(days=100)
        order = {
            "event_id": "o1",
            "type": "order_paid",
            "occurred_at": long_ago.isoformat(),
            "identities": {"member_no": "M1"},
            "properties": {"order_id": "o1", "amount_fen": 100},
        }
        with db.unit_of_work() as session:
            ingest(session, client.app.state.vault, merchant.id, [order], now=long_ago)
        # when
        swept = runner.invoke(app, ["lifecycle", "sweep", "--merchant", merchant.id, "--json"])
        again = runner.invoke(app, ["lifecycle", "sweep", "--json"])
        stages = runner.invoke(app, ["lifecycle", "stages", "-m", merchant.id, "--json"])
        start = long_ago.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        flows = runner.invoke(app, ["lifecycle", "flows", "-m", merchant.id, "--from", start, "--json"])
        bad = runner.invoke(app, ["lifecycle", "stages", "-m", merchant.id, "--date", "tomorrow"])
        unknown = runner.invoke(app, ["lifecycle", "stages", "-m", "mch_nope"])
        declined = runner.invoke(app, ["lifecycle", "rebuild", "-m", merchant.id], input="n\n")
        rebuilt = runner.invoke(app, ["lifecycle", "rebuild", "-m", merchant.id, "--yes", "--json"])
        # then
        assert swept.exit_code == 0, swept.output
        assert [(r["members"], r["transitions"]) for r in json.loads(swept.stdout)] == [(1, 1)]
        assert all(r["transitions"] == 0 for r in json.loads(again.stdout))
        assert json.loads(stages.stdout)["stages"]["dormant"] == 1
        assert json.loads(flows.stdout)["flows"] == [
            {"from_stage": "first_order", "to_stage": "dormant", "members": 1}
        ]
        assert bad.exit_code == 2
        assert "must be a date" in bad.output
        assert unknown.exit_code == 2
        assert declined.exit_code == 2
        # the rebuilt ledger dates the first order on its own day, not on the day it was swept
        assert json.loads(rebuilt.stdout) == {"merchant_id": merchant.id, "members": 1, "transitions": 2}
        rebuilt_flows = runner.invoke(
            app, ["lifecycle", "flows", "-m", merchant.id, "--from", start, "--json"]
        )
        assert json.loads(rebuilt_flows.stdout)["flows"] == json.loads(flows.stdout)["flows"]
