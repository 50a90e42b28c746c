"""``POST /api/v1/imports/members|orders``: multipart uploads streamed to a temporary file, the same
import service as the CLI, rejected rows in the answer and as CSV, and one merchant per key."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from siyu.tenancy import facade as tenancy
from tests.conftest import Tenant
from tests.imports.conftest import Shop, excel_time, write_xlsx

ORDERS = "订单号,手机号,实付金额,支付时间,门店编码\n"


def upload(
    client: TestClient, tenant: Tenant, kind: str, content: bytes, name: str = "f.csv", **form: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.post(
        f"/api/v1/imports/{kind}", files={"file": (name, content)}, data=form, headers=tenant.headers
    )
    return response.status_code, response.json()


def shop_of(tenant: Tenant, db: Database, settings: Settings) -> Shop:
    with db.unit_of_work() as session:
        stores = {"XH01": tenancy.create_store(session, tenant.merchant_id, name="徐汇", code="XH01").id}
    return Shop(tenant.merchant_id, stores, IdentifierVault(settings.resolved_secret_key()), db)


@pytest.fixture
def a_shop(tenant: Tenant, db: Database, settings: Settings) -> Shop:
    return shop_of(tenant, db, settings)


class TestUpload:
    def test_members_csv(self, client: TestClient, tenant: Tenant, a_shop: Shop) -> None:
        # when
        status, body = upload(
            client, tenant, "members", "手机号,标签\n13800138000,vip\n".encode(), "会员.csv"
        )
        # then
        assert status == 200, body
        assert body["kind"] == "members"
        assert body["file_name"] == "会员.csv"
        assert (body["rows_read"], body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 0, 0)
        assert body["mapping"] == {"phone": "手机号", "tags": "标签"}
        assert (body["status"], body["origin"]) == ("completed", "api")
        assert body["rejected_rows"] == []
        assert body["rejected_rows_url"] is None
        assert a_shop.member_of("phone", "13800138000") is not None

    def test_orders_xlsx_with_a_mapping(
        self, client: TestClient, tenant: Tenant, a_shop: Shop, tmp_path: Path
    ) -> None:
        # given
        path = write_xlsx(
            tmp_path / "o.xlsx",
            [["单号", "电话", "实收", "时间"], ["X1", 13800138000, 12.3, excel_time(2026, 5, 1, 9)]],
        )
        mapping = json.dumps({"order_id": "单号", "phone": "电话", "amount": "实收", "paid_at": "时间"})
        # when
        status, body = upload(client, tenant, "orders", path.read_bytes(), "o.xlsx", mapping=mapping)
        # then
        assert status == 200, body
        assert (body["file_format"], body["accepted"]) == ("xlsx", 1)
        assert [(e.event_id, e.amount_fen) for e in a_shop.events()] == [("order:X1", 1230)]

    def test_rejected_rows_in_the_answer_and_as_csv(
        self, client: TestClient, tenant: Tenant, a_shop: Shop
    ) -> None:
        # given
        content = (ORDERS + "A1,13800138000,12.30,2026-05-01,XH01\nA2,13800138000,12.345,2026-05-01,\n"
                   "A3,13800138000,1,2026-05-01,S9\n").encode()  # fmt: skip
        # when
        status, body = upload(client, tenant, "orders", content, "orders.csv")
        # then
        assert status == 200, body
        assert (body["accepted"], body["rejected"]) == (1, 2)
        assert body["rejected_rows"] == [
            {
                "line": 3,
                "reason": "amount '12.345' has more than 2 decimal places (fen)",
                "column": "实付金额",
                "values": ["A2", "13800138000", "12.345", "2026-05-01", ""],
            },
            {
                "line": 4,
                "reason": "unknown store code 'S9' (no store of this merchant has it)",
                "column": "门店编码",
                "values": ["A3", "13800138000", "1", "2026-05-01", "S9"],
            },
        ]
        # and when
        response = client.get(body["rejected_rows_url"], headers=tenant.headers)
        # then
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert response.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0] == ["line", "reason", "column", "订单号", "手机号", "实付金额", "支付时间", "门店编码"]
        assert [r[0] for r in rows[1:]] == ["3", "4"]
        assert rows[2][3:] == ["A3", "13800138000", "1", "2026-05-01", "S9"]

    def test_uploading_the_same_file_again_counts_once(
        self, client: TestClient, tenant: Tenant, a_shop: Shop
    ) -> None:
        content = (ORDERS + "A1,13800138000,12.30,2026-05-01,XH01\n").encode()
        upload(client, tenant, "orders", content)
        status, body = upload(client, tenant, "orders", content)
        assert status == 200
        assert (body["accepted"], body["duplicates"]) == (0, 1)
        assert len(a_shop.events()) == 1

    def test_the_report_is_kept(self, client: TestClient, tenant: Tenant, a_shop: Shop) -> None:
        # given
        _, first = upload(client, tenant, "members", b"phone\n13800138000\n")
        _, second = upload(client, tenant, "members", b"phone\n13800138001\n")
        # when
        listed = client.get("/api/v1/imports?limit=1", headers=tenant.headers).json()
        rest = client.get(f"/api/v1/imports?cursor={listed['next_cursor']}", headers=tenant.headers).json()
        one = client.get(f"/api/v1/imports/{second['id']}", headers=tenant.headers).json()
        # then
        assert [i["id"] for i in listed["items"] + rest["items"]] == [first["id"], second["id"]]
        assert (one["id"], one["accepted"], one["status"]) == (second["id"], 1, "completed")

    def test_a_file_bigger_than_the_json_body_limit_is_fine(
        self, client: TestClient, tenant: Tenant, a_shop: Shop, settings: Settings
    ) -> None:
        # given: more than SIYU_MAX_BODY_BYTES (64 KiB in tests), mostly an ignored column
        note = "备" * 1000
        content = ("手机号,备注\n" + "".join(f"1380013{n:04d},{note}\n" for n in range(40))).encode()
        assert len(content) > settings.max_body_bytes
        # when
        status, body = upload(client, tenant, "members", content)
        # then
        assert status == 200, body
        assert body["accepted"] == 40


class TestUploadRefusals:
    def test_a_gbk_file_is_a_problem_that_names_the_line_and_the_form_field(
        self, client: TestClient, tenant: Tenant, a_shop: Shop
    ) -> None:
        # when
        status, body = upload(client, tenant, "members", "手机号,标签\n13800138000,咖啡\n".encode("gbk"))
        # then
        assert status == 422
        assert body["type"] == "https://siyu.dev/problems/import-file-invalid"
        assert body["detail"].startswith("line 1 is not valid UTF-8")
        assert "encoding=gb18030" in body["detail"]
        assert body["line"] == 1
        # and when: with the encoding
        status, body = upload(
            client, tenant, "members", "手机号,标签\n13800138000,咖啡\n".encode("gbk"), encoding="gbk"
        )
        # then
        assert status == 200, body

    def test_a_bad_line_part_way_keeps_the_chunks_before_it(
        self, client: TestClient, tenant: Tenant, a_shop: Shop
    ) -> None:
        # given: 2,001 good rows fill the first chunk, then a GBK line
        good = "".join(f"1380{n:07d}\n" for n in range(2001)).encode()
        content = b"phone,tag\n" + good + "13800000000,咖啡\n".encode("gbk")
        # when
        status, body = upload(client, tenant, "members", content)
        # then
        assert status == 422, body
        assert body["type"] == "https://siyu.dev/problems/import-aborted"
        assert body["detail"].startswith("line 2003 is not valid UTF-8")
        assert body["import"]["status"] == "failed"
        assert body["import"]["accepted"] == 2001
        assert len(a_shop.events()) == 2001
        report = client.get(f"/api/v1/imports/{body['import']['id']}", headers=tenant.headers).json()
        assert (report["status"], report["accepted"], report["error"]) == ("failed", 2001, body["detail"])

    @pytest.mark.parametrize(
        ("content", "form", "message"),
        [
            (b"phone,amount\n1,2\n", {}, "no order_id"),
            (ORDERS.encode(), {"mapping": "[1]"}, "mapping must be a JSON object"),
            (ORDERS.encode(), {"mapping": '{"nickname": "x"}'}, "unknown field 'nickname'"),
            (ORDERS.encode(), {"sheet": "x"}, "a sheet applies to .xlsx files only"),
        ],
    )
    def test_unusable_files_and_mappings(
        self, client: TestClient, tenant: Tenant, content: bytes, form: dict[str, str], message: str
    ) -> None:
        status, body = upload(client, tenant, "orders", content, **form)
        assert status == 422
        assert message in body["detail"]

    def test_a_key_without_the_imports_scope_is_refused(
        self, client: TestClient, make_tenant: Callable[..., Tenant]
    ) -> None:
        writer = make_tenant("只写事件", scopes=["events:write"])
        status, body = upload(client, writer, "members", b"phone\n13800138000\n")
        assert status == 403
        assert "imports:write" in body["detail"]

    def test_uploads_over_the_upload_limit_are_413(
        self, settings: Settings, db: Database, tenant: Tenant, a_shop: Shop
    ) -> None:
        # given: an app whose upload limit is 4 KiB
        small = create_app(replace_settings(settings, max_upload_bytes=4096), db=db, console=False)
        client = TestClient(small, raise_server_exceptions=False)
        content = b"phone,note\n" + b"13800138000," + b"x" * 8000 + b"\n"

        def chunked() -> Iterator[bytes]:
            body = (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n--b--\r\n"
            )
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        # when: once with a Content-Length, once streamed without one
        declared = client.post(
            "/api/v1/imports/members", files={"file": ("m.csv", content)}, headers=tenant.headers
        )
        streamed = client.post(
            "/api/v1/imports/members",
            content=chunked(),
            headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
        # then
        for response in (declared, streamed):
            assert response.status_code == 413, response.text
            assert response.json()["type"] == "https://siyu.dev/problems/payload-too-large"
        assert a_shop.events() == []


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


class TestTenantIsolation:
    def test_a_key_imports_into_its_own_merchant_only(
        self, client: TestClient, make_tenant: Callable[..., Tenant], db: Database, settings: Settings
    ) -> None:
        # given
        a, b = make_tenant("甲"), make_tenant("乙")
        shop_a, shop_b = shop_of(a, db, settings), shop_of(b, db, settings)
        content = (
            ORDERS + "A1,13800138000,12.30,2026-05-01,XH01\nA2,13800138000,x,2026-05-01,XH01\n"
        ).encode()
        # when
        status, body = upload(client, a, "orders", content)
        # then
        assert status == 200, body
        assert [e.event_id for e in shop_a.events()] == ["order:A1"]
        assert shop_a.events()[0].store_id == shop_a.stores["XH01"]
        assert shop_b.events() == []
        assert shop_b.member_of("phone", "13800138000") is None
        for path in (f"/api/v1/imports/{body['id']}", f"/api/v1/imports/{body['id']}/rejected"):
            assert client.get(path, headers=b.headers).status_code == 404
        assert client.get("/api/v1/imports", headers=b.headers).json()["items"] == []
        # and when: b uploads the same file, its store code resolves to b's own store
        status, body_b = upload(client, b, "orders", content)
        # then: b's import is its own (not duplicates of a's)
        assert (body_b["accepted"], body_b["duplicates"]) == (1, 0)
        assert shop_b.events()[0].store_id == shop_b.stores["XH01"] != shop_a.stores["XH01"]
