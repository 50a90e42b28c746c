"""The operations and management pages, driven through NiceGUI's simulated user against the
suite's real database (SQLite or PostgreSQL): members, segments, campaigns, loyalty, staff &
access, settings.

Data is made through the real paths (event ingestion, the modules' facades); what a page did is
checked through the facades again, not through the page's own widgets only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.testing import User

from siyu.campaigns import facade as campaigns
from siyu.console import campaigns as console_campaigns
from siyu.console.i18n import EN, ZH
from siyu.console.rule_builder import from_rule, to_rule
from siyu.console.state import STATE
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.lifecycle import facade as lifecycle
from siyu.members import facade as members
from siyu.messaging import facade as messaging
from siyu.points import facade as points
from siyu.segments import service as segments
from siyu.segments.rules import check_rule
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import BootstrapResult
from siyu.tenancy.models import StaffRole, StoreKind
from siyu.tiers import facade as tiers
from tests.console import test_console as shell
from tests.console.test_console import PASSWORD, add_staff, signed_in

# the console shell's fixtures (a simulated user on registered pages, a bootstrapped merchant)
anyio_backend = shell.anyio_backend
merchant = shell.merchant
user = shell.user

pytestmark = pytest.mark.anyio


@pytest.fixture
def ops(user: User, app: FastAPI) -> User:
    """The simulated user, with the app's identifier vault (search and export need it)."""
    STATE.vault = app.state.vault
    return user


def send(db: Database, app: FastAPI, merchant_id: str, events: list[dict[str, Any]]) -> list[str]:
    """Ingest events through the real path; returns each event's member id."""
    with db.unit_of_work() as session:
        verdicts = ingest(session, app.state.vault, merchant_id, events, now=utcnow())
    assert all(v.status == "accepted" for v in verdicts), verdicts
    return [v.member_id or "" for v in verdicts]


def order(event_id: str, phone: str, amount_fen: int = 1200, store_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": "order_paid",
        "occurred_at": utcnow().isoformat(),
        "identities": {"phone": phone},
        "properties": {"order_id": event_id, "amount_fen": amount_fen},
    }
    if store_id:
        event["store_id"] = store_id
    return event


def visit(event_id: str, phone: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "visit",
        "occurred_at": utcnow().isoformat(),
        "identities": {"phone": phone},
    }


async def eventually(check: Callable[[], bool], attempts: int = 60) -> None:
    """Wait until ``check()`` holds (pages redraw and debounce asynchronously); fail otherwise."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def one(user: User, marker: str) -> Any:
    (element,) = user.find(marker=marker).elements
    return element


async def ready(user: User, marker: str) -> Any:
    """The one element with ``marker`` once the page has drawn it (redraws run after the event)."""
    await user.should_see(marker=marker, retries=40)
    return one(user, marker)


async def rows_of(user: User, marker: str, expected: int) -> list[dict[str, Any]]:
    """The rows of the table with ``marker`` once it has ``expected`` of them."""
    rows: list[dict[str, Any]] = []
    for _ in range(60):
        tables = [e for e in user.find(marker=marker).elements if not e.is_deleted]
        rows = tables[0].rows if tables else []
        if len(rows) == expected:
            break
        await asyncio.sleep(0.05)
    assert len(rows) == expected, rows
    return rows


def count_of(user: User) -> int | None:
    found = [e for e in user.find(marker="segment-count").elements if not e.is_deleted]
    value = found[0].props.get("data-count") if found else None
    return None if value is None else int(value)


# ---------------------------------------------------------------- members


class TestMembers:
    async def test_search_by_phone_opens_the_360_view_with_masked_identities(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given: a member with two orders and a visit
        mid = merchant.merchant.id
        (member_id, _, _) = send(
            db,
            app,
            mid,
            [order("o1", "13800138000"), order("o2", "13800138000", 3400), visit("v1", "13800138000")],
        )
        # when
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/members")
        ops.find(marker="search-value").type("13800138000")
        ops.find(marker="search-button").click()
        # then
        await ops.should_see(member_id)
        await ops.should_see(ZH["members.identities"])
        await ops.should_not_see("13800138000")  # masked, never in clear
        timeline = one(ops, "member-timeline")
        assert sorted(r["type"] for r in timeline.rows) == ["order_paid", "order_paid", "visit"]
        identities = one(ops, "member-identities")
        assert [r["kind"] for r in identities.rows] == [ZH["identity.phone"]]
        assert "8000" in identities.rows[0]["masked"]
        assert "13800138000" not in identities.rows[0]["masked"]
        await ops.should_see(ZH["stage.repeat"], retries=20)
        await ops.should_see(marker="member-reachability")

    async def test_an_unknown_identity_says_not_found(self, ops: User, merchant: BootstrapResult) -> None:
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/members")
        ops.find(marker="search-value").type("13900000000")
        ops.find(marker="search-button").click()
        await ops.should_see(ZH["members.not_found"])

    async def test_tags_are_added_and_removed(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        mid = merchant.merchant.id
        (member_id,) = send(db, app, mid, [order("o1", "13800138001")])
        await signed_in(ops, "owner", PASSWORD)
        await ops.open(f"/members/{member_id}")
        ops.find(marker="tag-input").type("vip, 咖啡")
        ops.find(marker="tag-add").click()

        def tags() -> list[str]:
            with db.reading() as session:
                profile = members.profile(session, mid, member_id)
            assert profile is not None
            return profile.tags

        await eventually(lambda: tags() == ["vip", "咖啡"])
        await ops.should_see(kind=ui.chip, content="vip")  # the page redraws after the write
        ops.find(kind=ui.chip, content="vip").trigger("remove")
        await eventually(lambda: tags() == ["咖啡"])

    async def test_erase_asks_first_then_erases_and_writes_the_audit_record(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given
        mid = merchant.merchant.id
        (member_id,) = send(db, app, mid, [order("o1", "13800138002")])
        await signed_in(ops, "owner", PASSWORD)
        await ops.open(f"/members/{member_id}")
        # when: the erase button only opens the confirmation
        ops.find(marker="member-erase").click()
        await ops.should_see(ZH["members.erase.title"])

        def status() -> str:
            with db.reading() as session:
                profile = members.profile(session, mid, member_id)
            assert profile is not None
            return profile.status.value

        assert status() == "active"
        # and the confirmation erases
        ops.find(marker="erase-confirm").click()
        await eventually(lambda: status() == "erased")
        with db.reading() as session:
            audit = tenancy.audit_log(session, mid)
            profile = members.profile(session, mid, member_id)
        assert [(a.action, a.target, a.actor) for a in audit if a.action == "member.erased"] == [
            ("member.erased", member_id, f"staff:{merchant.owner.id}")
        ]
        assert profile is not None
        assert profile.identities == []
        await ops.should_see(ZH["members.status.erased"])

    async def test_export_downloads_the_data_and_writes_the_audit_record(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        mid = merchant.merchant.id
        (member_id,) = send(db, app, mid, [order("o1", "13800138003")])
        await signed_in(ops, "owner", PASSWORD)
        await ops.open(f"/members/{member_id}")
        ops.find(marker="member-export").click()
        response = await ops.download.next()
        exported = json.loads(response.content)
        assert "13800138003" in json.dumps(exported)  # the export is the one place identities are in clear
        with db.reading() as session:
            actions = [(a.action, a.target) for a in tenancy.audit_log(session, mid)]
        assert ("member.exported", member_id) in actions

    async def test_an_analyst_may_neither_erase_nor_export_nor_tag(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        mid = merchant.merchant.id
        (member_id,) = send(db, app, mid, [order("o1", "13800138004")])
        add_staff(db, mid, "ana", StaffRole.ANALYST)
        await signed_in(ops, "ana", "staff-password")
        await ops.open(f"/members/{member_id}")
        await ops.should_see(marker="member-identities")
        await ops.should_not_see(marker="member-erase")
        await ops.should_not_see(marker="member-export")
        await ops.should_not_see(marker="tag-add")

    async def test_franchise_staff_see_only_their_stores_members(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given: a member who ordered at the franchise store and one who ordered at a direct store
        mid = merchant.merchant.id
        with db.unit_of_work() as session:
            own = tenancy.create_store(session, mid, name="加盟一店", kind=StoreKind.FRANCHISE)
            other = tenancy.create_store(session, mid, name="直营总店")
        (mine, theirs) = send(
            db,
            app,
            mid,
            [order("o1", "13800138005", store_id=own.id), order("o2", "13800138006", store_id=other.id)],
        )
        add_staff(db, mid, "fr", StaffRole.OPERATOR, (own.id,))
        # when
        await signed_in(ops, "fr", "staff-password")
        await ops.open("/area/members")
        # then: the list holds only the franchise's member
        listed = one(ops, "member-list")
        assert [r["id"] for r in listed.rows] == [mine]
        await ops.should_see(ZH["members.limited"])
        # searching the other member finds nothing, and its page is "not found"
        ops.find(marker="search-value").type("13800138006")
        ops.find(marker="search-button").click()
        await ops.should_see(ZH["members.not_found"])
        await ops.open(f"/members/{theirs}")
        await ops.should_see(marker="member-missing")
        # clicking a listed member opens its 360° view
        await ops.open("/area/members")
        ops.find(marker="member-list").trigger("rowClick", [{}, {"id": mine}, 0])
        await ops.should_see(marker="member-identities", retries=20)
        assert one(ops, "member-id").text == mine


# ---------------------------------------------------------------- segments

EVERY_LEAF = {
    "and": [
        {"attribute": {"field": "order_count", "op": "gte", "value": 1}},
        {"attribute": {"field": "last_seen_at", "op": "within_days", "value": 30}},
        {"attribute": {"field": "acquisition_channel", "op": "in", "value": ["alipay", "douyin"]}},
        {"tags": {"any": ["vip"]}},
        {"stage": {"in": ["repeat", "super"]}},
        {"tier": {"in": ["金卡"]}},
        {"points": {"op": "gte", "value": 100}},
        {"rfm": {"measure": "recency_days", "op": "lte", "value": 30}},
        {
            "or": [
                {"behaviour": {"event": "visit", "op": "gte", "count": 2, "within_days": 7}},
                {"near": {"km": 3.0}},
            ]
        },
        {"not": {"coupon": {"state": "unredeemed", "within_days": 14}}},
        {"reachable": {"channel": "sms"}},
        {"score": {"model": "churn_risk", "op": "gte", "value": 0.7}},
    ]
}


def test_the_builder_tree_round_trips_every_condition_type() -> None:
    """Every leaf kind of the language, nested and/or/not: tree → rule gives the rule back."""
    kinds = {next(iter(leaf)) for leaf in EVERY_LEAF["and"]} | {"behaviour", "near", "coupon"}
    assert kinds >= {
        "attribute",
        "tags",
        "stage",
        "tier",
        "points",
        "rfm",
        "behaviour",
        "coupon",
        "near",
        "reachable",
        "score",
    }
    check_rule(EVERY_LEAF)
    assert to_rule(from_rule(EVERY_LEAF)) == EVERY_LEAF
    assert to_rule(from_rule({"not": {"tags": {"none": ["员工"]}}})) == {"not": {"tags": {"none": ["员工"]}}}
    assert to_rule(from_rule(None)) is None


class TestSegments:
    async def test_the_count_changes_as_rules_are_added_and_the_segment_is_saved_and_materialised(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given: one buyer and two visitors
        mid = merchant.merchant.id
        send(
            db, app, mid, [order("o1", "13800138010"), visit("v1", "13800138011"), visit("v2", "13800138012")]
        )
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/segments")
        # no condition yet: every member
        await eventually(lambda: count_of(ops) == 3)
        # when: a condition "at least one order" is added, the count follows
        (await ready(ops, "rule-add")).value = "attribute"
        await eventually(lambda: count_of(ops) == 1)
        # and negating it gives the others
        (await ready(ops, "rule-0-not")).value = True
        await eventually(lambda: count_of(ops) == 2)
        # a nested "or" group with a behaviour condition widens it again
        one(ops, "rule-0-not").value = False
        one(ops, "rule-op").value = "or"
        ops.find(marker="rule-add-group").click()
        (await ready(ops, "rule-1-add")).value = "behaviour"
        (await ready(ops, "rule-1-0-event")).value = "visit"
        await eventually(lambda: count_of(ops) == 3)
        # then: saved as a segment and materialised
        ops.find(marker="segment-name").type("买过或来过")
        ops.find(marker="segment-save").click()

        def saved() -> list[Any]:
            with db.reading() as session:
                return list(segments.list_segments(session, mid, PageRequest(limit=10)))

        await eventually(lambda: len(saved()) == 1)
        (segment,) = saved()
        assert segment.name == "买过或来过"
        assert segment.rule == {
            "or": [
                {"attribute": {"field": "order_count", "op": "gte", "value": 1}},
                {"behaviour": {"event": "visit", "op": "gte", "count": 1, "within_days": 30}},
            ]
        }
        await ready(ops, f"materialise-{segment.id}")
        ops.find(marker=f"materialise-{segment.id}").click()
        await ops.should_see(ZH["segments.materialised"].format(n=3))

    async def test_every_condition_type_can_be_added_in_the_builder(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/segments")
        kinds = [
            "attribute",
            "tags",
            "stage",
            "tier",
            "points",
            "rfm",
            "behaviour",
            "coupon",
            "near",
            "reachable",
            "score",
        ]
        for i, kind in enumerate(kinds):
            (await ready(ops, "rule-add")).value = kind
            await ready(ops, f"rule-{i}-leaf")
        leaves = [e for e in ops.find(kind=ui.row).elements if any(m.endswith("-leaf") for m in e._markers)]
        assert len(leaves) == len(kinds)
        # an incomplete condition (no tags yet) is reported with its place in the rule, not raised
        await ops.should_see(marker="segment-error")
        await eventually(lambda: "/" in one(ops, "segment-error").text)

    async def test_an_invalid_rule_is_shown_not_raised(self, ops: User, merchant: BootstrapResult) -> None:
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/segments")
        (await ready(ops, "rule-add")).value = "behaviour"
        (await ready(ops, "rule-0-event")).value = "not a type!"
        await eventually(lambda: "behaviour/event" in one(ops, "segment-error").text)

    async def test_franchise_staff_are_refused(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        with db.unit_of_work() as session:
            own = tenancy.create_store(session, mid, name="加盟一店", kind=StoreKind.FRANCHISE)
        add_staff(db, mid, "fr", StaffRole.OPERATOR, (own.id,))
        await signed_in(ops, "fr", "staff-password")
        await ops.open("/area/segments")
        await ops.should_see(marker="refused")


# ---------------------------------------------------------------- campaigns


def make_template(db: Database, merchant_id: str, name: str = "满30减5") -> str:
    with db.unit_of_work() as session:
        spec = TemplateIn.model_validate(
            {
                "name": name,
                "kind": "threshold",
                "value_fen": 500,
                "threshold_fen": 3000,
                "total_stock": 100,
                "valid_days": 30,
            }
        )
        created = coupons.create_template(session, merchant_id, spec, now=utcnow())
        coupons.change_template_status(session, merchant_id, created.id, "activate", now=utcnow())
    return created.id


class TestCampaigns:
    async def test_the_wizard_creates_a_campaign_the_facade_sees(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        # given: a coupon template and a saved segment
        mid = merchant.merchant.id
        template_id = make_template(db, mid)
        with db.unit_of_work() as session:
            segment = segments.create_segment(
                session, mid, name="沉睡", description="", rule={"stage": {"in": ["dormant"]}}, now=utcnow()
            )
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/campaigns")
        ops.find(marker="campaign-new").click()
        await ops.should_see(marker="wizard-name")
        # when: goal → audience → treatment → schedule → holdout and budget → review → create
        ops.find(marker="wizard-name").type("唤醒沉睡会员")
        one(ops, "wizard-goal").value = "active"
        one(ops, "wizard-audience").value = "segment"
        one(ops, "wizard-segment").value = segment.id
        one(ops, "wizard-action").value = "coupon"
        one(ops, "wizard-coupon").value = template_id
        one(ops, "wizard-start-day").value = "2030-01-15"
        one(ops, "wizard-start-time").value = "10:30"
        one(ops, "wizard-holdout").value = 20
        one(ops, "wizard-budget-yuan").value = 500
        one(ops, "wizard-budget-coupons").value = 80
        ops.find(marker="wizard-create").click()
        # then
        await ops.should_see(ZH["campaigns.created"])
        with db.reading() as session:
            (created,) = campaigns.list_campaigns(session, mid)
        assert (created.name, created.goal, created.kind, created.status) == (
            "唤醒沉睡会员",
            "active",
            "broadcast",
            "draft",
        )
        assert created.audience_segment_id == segment.id
        assert created.holdout_bp == 2000
        assert (created.budget_fen, created.budget_coupons) == (50_000, 80)
        assert created.variants[0]["treatments"] == [{"action": "coupon", "template_id": template_id}]
        assert created.schedule is not None
        assert created.schedule["start_at"].startswith("2030-01-15T10:30:00+08:00")

    async def test_the_wizard_builds_an_a_b_test_of_two_treatments(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        # given
        mid = merchant.merchant.id
        template_id = make_template(db, mid)
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/campaigns/new")
        ops.find(marker="wizard-name").type("券还是积分")
        one(ops, "wizard-action").value = "coupon"
        one(ops, "wizard-coupon").value = template_id
        # when: B gives points to 30 % of the treated
        one(ops, "wizard-ab").value = True
        (await ready(ops, "wizard-b-percent")).value = 30
        one(ops, "wizard-b-action").value = "points"
        one(ops, "wizard-b-points").value = 200
        ops.find(marker="wizard-create").click()
        # then
        await ops.should_see(ZH["campaigns.created"])
        with db.reading() as session:
            (created,) = campaigns.list_campaigns(session, mid)
        assert created.variants == [
            {"key": "A", "weight_bp": 7000, "treatments": [{"action": "coupon", "template_id": template_id}]},
            {"key": "B", "weight_bp": 3000, "treatments": [{"action": "points", "points": 200}]},
        ]

    def test_an_a_b_split_outside_one_to_ninety_nine_percent_is_refused(self) -> None:
        form = {
            "ab": True,
            "b_percent": 100,
            "action": "points",
            "points": 1,
            "b_action": "points",
            "b_points": 2,
        }
        with pytest.raises(ValueError, match="B"):
            console_campaigns._variants(form)
        assert console_campaigns._variants(form | {"ab": False})[0]["key"] == "main"

    async def test_a_trigger_campaign_from_the_wizard_is_scheduled_and_cancelled_from_its_page(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/campaigns/new")
        ops.find(marker="wizard-name").type("沉睡召回")
        one(ops, "wizard-action").value = "points"
        one(ops, "wizard-points").value = 50
        one(ops, "wizard-kind").value = "trigger"
        (await ready(ops, "wizard-trigger")).value = "stage_entered"
        (await ready(ops, "wizard-stage")).value = "dormant"
        one(ops, "wizard-delay").value = 24
        one(ops, "wizard-start-day").value = "2030-02-01"
        one(ops, "wizard-recall").value = True
        ops.find(marker="wizard-create").click()
        await ops.should_see(marker="results-cohorts", retries=20)
        with db.reading() as session:
            (created,) = campaigns.list_campaigns(session, mid)
        assert created.kind == "trigger"
        assert created.trigger is not None
        assert (created.trigger["event"], created.trigger["stage"], created.trigger["delay_seconds"]) == (
            "stage_entered",
            "dormant",
            86_400,
        )
        assert created.recall is True
        assert created.variants[0]["treatments"] == [{"action": "points", "points": 50}]
        # the campaign's own page moves it through its states

        def status() -> str:
            with db.reading() as session:
                found = campaigns.get_campaign(session, mid, created.id)
            assert found is not None
            return found.status

        ops.find(marker=f"schedule-{created.id}").click()
        await eventually(lambda: status() == "scheduled")
        await ops.open(f"/campaigns/{created.id}")
        await ready(ops, f"cancel-{created.id}")
        ops.find(marker=f"cancel-{created.id}").click()
        await eventually(lambda: status() == "cancelled")

    async def test_a_wizard_error_names_the_field(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/campaigns/new")
        one(ops, "wizard-action").value = "points"
        ops.find(marker="wizard-create").click()  # no name
        await ops.should_see("name")
        with db.reading() as session:
            assert campaigns.list_campaigns(session, merchant.merchant.id) == []

    async def test_an_analyst_has_no_new_button_and_the_wizard_refuses(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        add_staff(db, merchant.merchant.id, "ana", StaffRole.ANALYST)
        await signed_in(ops, "ana", "staff-password")
        await ops.open("/area/campaigns")
        await ops.should_see(ZH["campaigns.readonly"])
        await ops.should_not_see(marker="campaign-new")
        await ops.open("/campaigns/new")
        await ops.should_see(marker="refused")
        await ops.should_not_see(marker="wizard-create")

    async def test_the_list_starts_and_pauses_and_the_results_show_groups_and_lift(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given: a draft over every member, with members who ordered
        mid = merchant.merchant.id
        member_ids = send(db, app, mid, [order(f"o{i}", f"1380013802{i}") for i in range(6)])
        with db.unit_of_work() as session:
            draft = campaigns.create_campaign(
                session,
                mid,
                {
                    "name": "回馈",
                    "goal": "worth",
                    "holdout_bp": 5000,
                    "variants": [
                        {
                            "key": "main",
                            "weight_bp": 10000,
                            "treatments": [{"action": "points", "points": 10}],
                        }
                    ],
                },
                now=utcnow(),
            )
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/campaigns")
        await ops.should_see("回馈")
        # when
        ops.find(marker=f"start-{draft.id}").click()

        def status() -> str:
            with db.reading() as session:
                found = campaigns.get_campaign(session, mid, draft.id)
            assert found is not None
            return found.status

        await eventually(lambda: status() == "running")
        await ops.should_see(marker=f"pause-{draft.id}")
        ops.find(marker=f"pause-{draft.id}").click()
        await eventually(lambda: status() == "paused")
        # members enter the experiment, then order again
        with db.unit_of_work() as session:
            view = campaigns.get_campaign(session, mid, draft.id)
            assert view is not None
            campaigns.assign_many(session, mid, view, member_ids, now=utcnow(), source="test")
        send(db, app, mid, [order(f"p{i}", f"1380013802{i}", 2000) for i in range(6)])
        # then: the results page shows both groups and the lift with its interval
        await ops.open(f"/campaigns/{draft.id}")
        await ops.should_see(marker="results-lift")
        cohorts = one(ops, "results-cohorts")
        audience = {r["cohort"]: int(r["audience"]) for r in cohorts.rows}
        assert audience[ZH["campaigns.group.holdout"]] + audience[ZH["results.all_variants"]] == 6
        lift = one(ops, "results-lift")
        assert lift.rows[0]["variant"] == ZH["results.all_variants"]
        assert lift.rows[0]["conversion_ci"].startswith("[")

    async def test_franchise_staff_are_refused(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        with db.unit_of_work() as session:
            own = tenancy.create_store(session, mid, name="加盟一店", kind=StoreKind.FRANCHISE)
        add_staff(db, mid, "fr", StaffRole.OPERATOR, (own.id,))
        await signed_in(ops, "fr", "staff-password")
        await ops.open("/area/campaigns")
        await ops.should_see(marker="refused")


# ---------------------------------------------------------------- loyalty


class TestLoyalty:
    async def test_a_coupon_template_is_created_shown_with_its_figures_and_paused(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/loyalty")
        ops.find(marker="coupon-new").click()
        ops.find(marker="coupon-name").type("新客立减")
        one(ops, "coupon-value").value = 8
        one(ops, "coupon-stock").value = 500
        ops.find(marker="coupon-save").click()
        await rows_of(ops, "coupon-templates", 1)

        def templates() -> list[Any]:
            with db.reading() as session:
                return list(coupons.list_templates(session, mid, PageRequest(limit=10)).items)

        (created,) = templates()
        assert (created.kind, created.value_fen, created.stock, created.status) == (
            "cash",
            800,
            500,
            "active",
        )
        (row,) = await rows_of(ops, "coupon-templates", 1)
        assert (row["name"], row["stock"], row["face"], row["issued"]) == ("新客立减", "500", "¥8.00", "0")
        ops.find(marker="coupon-templates").trigger("status", [created.id, "pause"])
        await eventually(lambda: templates()[0].status == "paused")

    async def test_a_coupon_template_is_renamed_budgeted_restocked_and_ended(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        # given
        mid = merchant.merchant.id
        template_id = make_template(db, mid)

        def template() -> Any:
            with db.reading() as session:
                return coupons.get_template(session, mid, template_id)

        stock = template().stock
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/loyalty")
        await rows_of(ops, "coupon-templates", 1)
        # when: edited
        ops.find(marker="coupon-templates").trigger("edit", template_id)
        await ops.should_see(marker="coupon-edit-name")
        one(ops, "coupon-edit-name").value = "老客回馈券"
        one(ops, "coupon-edit-budget").value = 1234.5
        one(ops, "coupon-edit-stock").value = 250
        ops.find(marker="coupon-edit-save").click()
        # then
        await eventually(lambda: template().name == "老客回馈券")
        edited = template()
        assert (edited.budget_fen, edited.stock, edited.remaining) == (123_450, stock + 250, stock + 250)

        def shown() -> list[str]:
            tables = [e for e in ops.find(marker="coupon-templates").elements if not e.is_deleted]
            return [r["name"] for r in tables[-1].rows] if tables else []

        await eventually(lambda: shown() == ["老客回馈券"])
        # when: ended, after confirming
        ops.find(marker="coupon-templates").trigger("end", template_id)
        await ops.should_see(ZH["loyalty.coupon.end_confirm"].format(name="老客回馈券"))
        ops.find(marker="coupon-end-confirm").click()
        await eventually(lambda: template().status == "ended")

    async def test_points_rules_mall_items_tiers_and_joint_mappings(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/loyalty")
        await ops.should_see(marker="points-settings")
        # a points rule
        ops.find(marker="rule-new").click()
        ops.find(marker="rule-event").elements.pop().value = "checkin"
        one(ops, "rule-points").value = 5
        ops.find(marker="rule-save").click()
        await ops.should_see(ZH["notify.saved"])
        # a mall item
        ops.find(marker="item-new").click()
        ops.find(marker="item-name").type("帆布袋")
        one(ops, "item-cost").value = 300
        ops.find(marker="item-save").click()
        # a tier, then a joint-membership mapping onto it
        ops.find(marker="tier-new").click()
        ops.find(marker="tier-name").type("金卡")
        ops.find(marker="tier-save").click()
        await ops.should_see(marker="joint-new")
        ops.find(marker="joint-new").click()
        ops.find(marker="joint-level").type("gold")
        ops.find(marker="joint-save").click()

        def state() -> tuple[Any, ...]:
            with db.reading() as session:
                return (
                    [(r.event_type, r.points) for r in points.list_rules(session, mid)],
                    [(i.name, i.cost_points) for i in points.list_items(session, mid)],
                    [(t.name, t.rank) for t in tiers.ladder(session, mid)],
                    [(m.platform, m.external_level) for m in tiers.joint_mappings(session, mid)],
                )

        await eventually(
            lambda: state() == ([("checkin", 5)], [("帆布袋", 300)], [("金卡", 1)], [("alipay", "gold")])
        )
        assert [r["name"] for r in await rows_of(ops, "mall-items", 1)] == ["帆布袋"]

    async def test_a_guide_reads_but_changes_nothing(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        make_template(db, merchant.merchant.id)
        add_staff(db, merchant.merchant.id, "guide", StaffRole.GUIDE)
        await signed_in(ops, "guide", "staff-password")
        await ops.open("/area/loyalty")
        assert [r["name"] for r in await rows_of(ops, "coupon-templates", 1)] == ["满30减5"]
        await ops.should_not_see(marker="coupon-new")
        await ops.should_not_see(marker="rule-new")
        await ops.should_not_see(marker="tier-new")


# ---------------------------------------------------------------- staff & access, settings


class TestStaffAndSettings:
    async def test_an_api_key_shows_its_secret_once_and_is_revoked(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/staff")
        ops.find(marker="key-new").click()
        ops.find(marker="key-name").type("POS")
        ops.find(marker="key-save").click()
        await ops.should_see(marker="key-secret")
        secret = one(ops, "key-secret").value
        with db.reading() as session:
            keys = {k.name: k for k in tenancy.list_keys(session, mid)}
        assert secret.startswith(keys["POS"].hint.rstrip("…"))
        assert len(secret) > 20
        # the page never shows the secret again
        await ops.open("/area/staff")
        await ops.should_not_see(secret)
        await ready(ops, f"revoke-{keys['POS'].id}")
        ops.find(marker=f"revoke-{keys['POS'].id}").click()

        def revoked() -> bool:
            with db.reading() as session:
                return any(
                    k.name == "POS" and k.revoked_at is not None for k in tenancy.list_keys(session, mid)
                )

        await eventually(revoked)

    async def test_staff_are_created_limited_to_a_store(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        with db.unit_of_work() as session:
            own = tenancy.create_store(session, mid, name="加盟一店", kind=StoreKind.FRANCHISE)
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/staff")
        ops.find(marker="staff-new").click()
        ops.find(marker="staff-login").type("franchisee")
        ops.find(marker="staff-password").type("a-long-password-1")
        one(ops, "staff-stores").value = [own.id]
        ops.find(marker="staff-save").click()
        await ops.should_see(marker="staff-franchisee")
        with db.reading() as session:
            made = {s.login: s for s in tenancy.list_staff(session, mid)}
        assert made["franchisee"].role is StaffRole.OPERATOR
        assert made["franchisee"].store_ids == (own.id,)

    async def test_an_operator_sees_access_but_cannot_change_it(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        add_staff(db, merchant.merchant.id, "op", StaffRole.OPERATOR)
        await signed_in(ops, "op", "staff-password")
        await ops.open("/area/staff")
        await ops.should_see(marker="staff-owner")
        await ops.should_not_see(marker="staff-new")
        await ops.should_not_see(marker="key-new")

    async def test_settings_change_time_zone_caps_quiet_hours_and_stage_rules(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        mid = merchant.merchant.id
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/settings")
        one(ops, "timezone").value = "Asia/Tokyo"
        ops.find(marker="timezone-save").click()
        one(ops, "per-day").value = 2
        one(ops, "quiet-start").value = "22:00"
        one(ops, "quiet-end").value = "08:00"
        ops.find(marker="fatigue-save").click()
        one(ops, "rule-dormant_after_days").value = 45
        ops.find(marker="rules-save").click()

        def state() -> tuple[Any, ...]:
            with db.reading() as session:
                merchant_now = tenancy.get_merchant(session, mid)
                fatigue = messaging.fatigue_settings(session, mid)
                rules = lifecycle.rules_of(session, mid)
            assert merchant_now is not None
            return (
                merchant_now.timezone,
                fatigue["marketing_per_day"],
                fatigue["quiet_start"],
                fatigue["quiet_end"],
                rules.dormant_after_days,
            )

        await eventually(lambda: state() == ("Asia/Tokyo", 2, "22:00", "08:00", 45))

    async def test_settings_show_how_current_the_analytics_mirror_is(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI, tmp_path: Any
    ) -> None:
        from siyu.analytics import mirror

        mid = merchant.merchant.id
        saved = STATE.analytics_dir
        try:
            # given no mirror configured, then one not synced yet, then a synced one
            STATE.analytics_dir = None
            await signed_in(ops, "owner", PASSWORD)
            await ops.open("/area/settings")
            await ops.should_see(marker="mirror-off")
            STATE.analytics_dir = tmp_path
            await ops.open("/area/settings")
            await ops.should_see(marker="mirror-none")
            send(db, app, mid, [order("o1", "13800138040"), order("o2", "13800138041")])
            mirror.sync(db, tmp_path, now=utcnow())
            # when
            await ops.open("/area/settings")
            # then the status shows the events mirrored and none pending
            await ops.should_see(marker="mirror-status")
            await ops.should_see(ZH["mirror.events"])
            await ops.should_see(ZH["mirror.no_facts"])  # two events: far below the facts' threshold
        finally:
            STATE.analytics_dir = saved

    async def test_a_bad_stage_rule_is_a_notification(
        self, ops: User, merchant: BootstrapResult, db: Database
    ) -> None:
        await signed_in(ops, "owner", PASSWORD)
        await ops.open("/area/settings")
        one(ops, "rule-lost_after_days").value = 10  # not after dormant (60)
        ops.find(marker="rules-save").click()
        await ops.should_see("lost_after_days must be greater than dormant_after_days")
        with db.reading() as session:
            assert lifecycle.rules_of(session, merchant.merchant.id).lost_after_days == 180


# ---------------------------------------------------------------- English


class TestEnglish:
    async def test_the_operations_pages_speak_english(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        mid = merchant.merchant.id
        (member_id,) = send(db, app, mid, [order("o1", "13800138030", 123_456_00)])
        await signed_in(ops, "owner", PASSWORD)
        ops.find(ZH["header.language"]).click()
        await ops.open(f"/members/{member_id}")
        await ops.should_see(EN["members.identities"])
        await ops.should_see(EN["members.timeline"])
        await ops.should_not_see(ZH["members.identities"])
        await ops.should_see("¥123,456.00")  # money in the English style
        await ops.open("/area/segments")
        await ops.should_see(EN["rule.add_group"])
        await ops.open("/campaigns/new")
        await ops.should_see(EN["wizard.treatment"])
        await ops.open("/area/loyalty")
        await ops.should_see(EN["loyalty.coupons"])
        await ops.open("/area/settings")
        await ops.should_see(EN["settings.fatigue"])

    async def test_chinese_money_uses_wan(
        self, ops: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        (member_id,) = send(db, app, merchant.merchant.id, [order("o1", "13800138031", 123_456_00)])
        await signed_in(ops, "owner", PASSWORD)
        await ops.open(f"/members/{member_id}")
        await ops.should_see("¥12.35万", retries=10)


def test_every_enumerated_label_exists_in_both_languages() -> None:
    """Labels built from enum values (stages, statuses, kinds, fields, ops) are all translated."""
    from siyu.campaigns.models import CampaignKind, CampaignStatus, GoalDimension
    from siyu.coupons.models import CouponKind, CouponStatus, TemplateStatus
    from siyu.kit.pii import IdentityKind
    from siyu.members.models import MemberStatus
    from siyu.segments.rules import AttributeField, CouponState, Op, ReachChannelName, RfmMeasure

    keys = (
        [f"campaigns.kind.{k.value}" for k in CampaignKind]
        + [f"campaigns.status.{s.value}" for s in CampaignStatus]
        + [f"campaigns.goal.{g.value}" for g in GoalDimension]
        + [f"campaigns.action.{a}" for a in ("schedule", "start", "pause", "resume", "cancel", "complete")]
        + [f"coupon.kind.{k.value}" for k in CouponKind]
        + [f"coupon.{s.value}" for s in CouponStatus]
        + [f"coupon.template.{s.value}" for s in TemplateStatus]
        + [f"identity.{k.value}" for k in IdentityKind]
        + [f"members.status.{s.value}" for s in MemberStatus]
        + [f"rule.field.{f.value}" for f in AttributeField]
        + [f"rule.op.{o.value}" for o in Op]
        + [f"rule.coupon.{s.value}" for s in CouponState]
        + [f"rule.rfm.{m.value}" for m in RfmMeasure]
        + [f"channel.{c.value}" for c in ReachChannelName]
    )
    assert [k for k in keys if k not in ZH or k not in EN] == []
