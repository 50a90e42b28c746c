"""The campaigns pages: the list with states and actions, the creation wizard, and the results.

The wizard walks goal → audience → treatment → schedule or trigger → holdout, budgets and
attribution → review, and creates a draft through ``campaigns.facade.create_campaign`` (the same
validation as ``POST /campaigns``: a bad field is a notification naming it). Roles without the
``campaigns:write`` scope (analysts, guides) and staff limited to some stores see no "new"
button, and the wizard page itself refuses them. Results are the API's own
(``GET /campaigns/{id}/results``): groups, the incremental lift with its interval, and ROI.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from nicegui import ui
from pydantic import ValidationError

from siyu.campaigns import facade as campaigns
from siyu.campaigns import results
from siyu.campaigns.models import CampaignKind, GoalDimension
from siyu.campaigns.results_endpoints import ResultsOut, results_out
from siyu.console.access import may, refuse
from siyu.console.fmt import money, number, percent, testid, when
from siyu.console.i18n import t
from siyu.console.layout import frame
from siyu.console.state import database
from siyu.coupons import facade as coupons
from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.kit.problems import Problem
from siyu.lifecycle.rules import Stage
from siyu.messaging import facade as messaging
from siyu.segments import service as segments
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope

TRIGGER_EVENTS = ("visit", "order_paid", "scan", "checkin", "stage_entered", "birthday")


def can_create(staff: StaffView) -> bool:
    return may(staff, Scope.CAMPAIGNS_WRITE) and not staff.limited_to_stores


def _readable(staff: StaffView) -> bool:
    return may(staff, Scope.CAMPAIGNS_READ) and not staff.limited_to_stores


# ---------------------------------------------------------------- the list


def campaigns_area(staff: StaffView) -> None:
    if not _readable(staff):
        refuse()
        return

    @ui.refreshable
    def content() -> None:
        campaign_list(staff, content.refresh)

    content()


def campaign_list(staff: StaffView, refresh: Any) -> None:
    writer = can_create(staff)
    with database().reading() as session:
        zone = tenancy.merchant_zone(session, staff.merchant_id)
        found = campaigns.list_campaigns(session, staff.merchant_id)
    with ui.row().classes("items-center gap-4"):
        ui.label(t("campaigns.count", n=len(found))).classes("text-slate-600")
        if writer:
            testid(
                ui.button(t("campaigns.new"), icon="add", on_click=lambda: ui.navigate.to("/campaigns/new")),
                "campaign-new",
            )
        else:
            ui.label(t("campaigns.readonly")).classes("text-sm text-slate-500")
    if not found:
        ui.label(t("campaigns.none")).classes("text-slate-500")
    for c in reversed(found):  # newest first
        card = testid(ui.card().classes("w-full max-w-5xl"), f"campaign-{c.id}")
        with card, ui.row().classes("items-center gap-3 w-full"):
            ui.link(c.name, f"/campaigns/{c.id}").classes("text-lg font-medium")
            testid(ui.badge(t(f"campaigns.status.{c.status}")), f"status-{c.id}")
            ui.label(f"{t(f'campaigns.goal.{c.goal}')} · {t(f'campaigns.kind.{c.kind}')}").classes("text-sm")
            ui.label(t("campaigns.holdout_share", share=percent(c.holdout_bp / 10_000, 0))).classes("text-sm")
            ui.label(when(c.created_at, zone)).classes("text-xs text-slate-500")
            ui.space()
            if writer:
                for action in campaigns.allowed_actions(c.status):
                    if action == "schedule" and not (c.schedule or {}).get("start_at"):
                        continue
                    testid(
                        ui.button(
                            t(f"campaigns.action.{action}"),
                            on_click=lambda action=action, cid=c.id: act(staff, cid, action, refresh),
                        ).props("flat dense no-caps"),
                        f"{action}-{c.id}",
                    )


def act(staff: StaffView, campaign_id: str, action: str, refresh: Any) -> None:
    try:
        with database().unit_of_work() as session:
            campaigns.move(session, staff.merchant_id, campaign_id, action, now=utcnow())
    except Problem as exc:
        ui.notify(t("notify.error", detail=exc.detail), type="negative")
        return
    ui.notify(t("campaigns.moved", action=t(f"campaigns.action.{action}")), type="positive")
    refresh()


# ---------------------------------------------------------------- the wizard


def wizard_page() -> None:
    with frame("campaigns.wizard") as staff:
        if staff is None:
            return
        if not can_create(staff):
            refuse()
            return
        wizard(staff)


def _options(staff: StaffView) -> dict[str, dict[str, str]]:
    with database().reading() as session:
        saved = segments.list_segments(session, staff.merchant_id, PageRequest(limit=200))
        templates = coupons.list_templates(session, staff.merchant_id, PageRequest(limit=200)).items
        messages = messaging.list_templates(session, staff.merchant_id)
    return {
        "segments": {s.id: s.name for s in saved},
        "coupons": {c.id: c.name for c in templates if c.status == "active"},
        "messages": {m.id: m.name for m in messages if m.kind == "marketing"},
    }


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _treatment(form: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The treatment of the wizard's answers for variant A (``prefix=""``) or B (``"b_"``)."""
    action = form[f"{prefix}action"]
    if action == "coupon":
        return {"action": "coupon", "template_id": form[f"{prefix}coupon_template"]}
    if action == "points":
        return {"action": "points", "points": _int(form[f"{prefix}points"]) or 0}
    if action == "message":
        return {"action": "message", "template_id": form[f"{prefix}message_template"], "variables": {}}
    return {
        "action": "guide_task",
        "title": form[f"{prefix}task_title"] or "",
        "body": form[f"{prefix}task_body"] or "",
    }


def _variants(form: dict[str, Any]) -> list[dict[str, Any]]:
    """One variant (``main``), or with the A/B option two (``A`` and ``B``) splitting the treated
    members by ``b_percent``; the holdout is taken first, from everyone."""
    if not form.get("ab"):
        return [{"key": "main", "weight_bp": 10_000, "treatments": [_treatment(form)]}]
    b_bp = round(float(form["b_percent"] or 0) * 100)
    if not 0 < b_bp < 10_000:
        raise ValueError(t("wizard.ab_split_range"))
    return [
        {"key": "A", "weight_bp": 10_000 - b_bp, "treatments": [_treatment(form)]},
        {"key": "B", "weight_bp": b_bp, "treatments": [_treatment(form, "b_")]},
    ]


def build_spec(form: dict[str, Any], zone: Any) -> dict[str, Any]:
    """The ``CampaignIn`` body of the wizard's answers (times in the merchant's zone)."""
    spec: dict[str, Any] = {
        "name": form["name"] or "",
        "goal": form["goal"],
        "kind": form["kind"],
        "holdout_bp": round(float(form["holdout_percent"] or 0) * 100),
        "variants": _variants(form),
        "attribution_days": _int(form["attribution_days"]) or 7,
        "recall": bool(form["recall"]),
    }
    if form["audience"] == "segment":
        spec["audience_segment_id"] = form["segment"]
    for key in ("budget_coupons", "budget_points"):
        if _int(form[key]) is not None:
            spec[key] = _int(form[key])
    if form["budget_yuan"] not in (None, ""):
        spec["budget_fen"] = round(float(form["budget_yuan"]) * 100)
    if form["start_day"]:
        start = datetime.combine(
            datetime.fromisoformat(form["start_day"]).date(),
            time.fromisoformat(form["start_time"] or "10:00"),
            zone,
        )
        schedule: dict[str, Any] = {"start_at": start.isoformat(), "recurrence": form["recurrence"]}
        if form["recurrence"] != "once":
            schedule["local_time"] = form["start_time"] or "10:00"
        if form["end_day"]:
            schedule["end_at"] = datetime.combine(
                datetime.fromisoformat(form["end_day"]).date(), time(23, 59), zone
            ).isoformat()
        spec["schedule"] = schedule
    if form["kind"] == CampaignKind.TRIGGER.value:
        trigger: dict[str, Any] = {
            "event": form["trigger_event"],
            "delay_seconds": int(float(form["delay_hours"] or 0) * 3600),
        }
        if form["trigger_event"] == "stage_entered":
            trigger["stage"] = form["trigger_stage"]
        if _int(form["repeat_days"]):
            trigger["repeat_after_days"] = _int(form["repeat_days"])
        spec["trigger"] = trigger
    return spec


def _variants_text(variants: list[dict[str, Any]]) -> str:
    """``A coupon`` or, for an A/B test, ``A 50 %: A coupon · B 50 %: Points``."""

    def action(v: dict[str, Any]) -> str:
        return t(f"wizard.action.{v['treatments'][0]['action']}")

    if len(variants) == 1:
        return action(variants[0])
    return " · ".join(f"{v['key']} {percent(v['weight_bp'] / 10_000, 0)}: {action(v)}" for v in variants)


def wizard(staff: StaffView) -> None:
    options = _options(staff)
    with database().reading() as session:
        zone = tenancy.merchant_zone(session, staff.merchant_id)
    form: dict[str, Any] = {
        "name": "",
        "goal": GoalDimension.ACTIVE.value,
        "audience": "all",
        "segment": next(iter(options["segments"]), None),
        "action": "coupon" if options["coupons"] else "points",
        "coupon_template": next(iter(options["coupons"]), None),
        "points": 100,
        "message_template": next(iter(options["messages"]), None),
        "task_title": "",
        "task_body": "",
        "ab": False,
        "b_percent": 50,
        "b_action": "points",
        "b_coupon_template": next(iter(options["coupons"]), None),
        "b_points": 100,
        "b_message_template": next(iter(options["messages"]), None),
        "b_task_title": "",
        "b_task_body": "",
        "kind": CampaignKind.BROADCAST.value,
        "start_day": "",
        "start_time": "10:00",
        "end_day": "",
        "recurrence": "once",
        "trigger_event": "visit",
        "trigger_stage": Stage.DORMANT.value,
        "delay_hours": 0,
        "repeat_days": None,
        "holdout_percent": 10,
        "budget_coupons": None,
        "budget_points": None,
        "budget_yuan": None,
        "attribution_days": 7,
        "recall": False,
    }

    def bind(widget: Any, key: str, name: str) -> Any:
        testid(widget.bind_value(form, key), f"wizard-{name}")
        return widget

    def nav(stepper: Any, first: bool = False, last: bool = False) -> None:
        with ui.stepper_navigation():
            if not first:
                ui.button(t("wizard.back"), on_click=stepper.previous).props("flat")
            if not last:
                testid(ui.button(t("wizard.next"), on_click=stepper.next), "wizard-next")

    with ui.stepper().props("vertical").classes("w-full max-w-4xl") as stepper:
        with ui.step(t("wizard.goal")):
            bind(ui.input(t("campaigns.name")).classes("w-96"), "name", "name")
            bind(
                ui.select(
                    {g.value: t(f"campaigns.goal.{g.value}") for g in GoalDimension},
                    label=t("campaigns.goal"),
                ),
                "goal",
                "goal",
            )
            nav(stepper, first=True)
        with ui.step(t("wizard.audience")):
            bind(
                ui.radio({"all": t("wizard.everyone"), "segment": t("wizard.segment")}).props("inline"),
                "audience",
                "audience",
            )
            segment = bind(
                ui.select(options["segments"], label=t("wizard.segment")).classes("w-96"),
                "segment",
                "segment",
            )
            segment.bind_visibility_from(form, "audience", lambda v: v == "segment")
            if not options["segments"]:
                ui.label(t("wizard.no_segments")).classes("text-sm text-slate-500")
            nav(stepper)
        with ui.step(t("wizard.treatment")):
            actions = {a: t(f"wizard.action.{a}") for a in ("coupon", "points", "message", "guide_task")}

            def treatment_fields(prefix: str, ids: str) -> None:
                """The treatment's inputs: test ids ``wizard-action`` … for A, ``wizard-b-action`` … for B."""
                key = f"{prefix}action"
                bind(ui.select(actions, label=t("wizard.action")), key, f"{ids}action")
                bind(
                    ui.select(options["coupons"], label=t("wizard.coupon_template")).classes("w-96"),
                    f"{prefix}coupon_template",
                    f"{ids}coupon",
                ).bind_visibility_from(form, key, lambda v: v == "coupon")
                bind(
                    ui.number(t("wizard.points"), min=1), f"{prefix}points", f"{ids}points"
                ).bind_visibility_from(form, key, lambda v: v == "points")
                bind(
                    ui.select(options["messages"], label=t("wizard.message_template")).classes("w-96"),
                    f"{prefix}message_template",
                    f"{ids}message",
                ).bind_visibility_from(form, key, lambda v: v == "message")
                with ui.column().bind_visibility_from(form, key, lambda v: v == "guide_task"):
                    bind(
                        ui.input(t("wizard.task_title")).classes("w-96"),
                        f"{prefix}task_title",
                        f"{ids}task-title",
                    )
                    bind(
                        ui.textarea(t("wizard.task_body")).classes("w-96"),
                        f"{prefix}task_body",
                        f"{ids}task-body",
                    )

            treatment_fields("", "")
            bind(ui.checkbox(t("wizard.ab")), "ab", "ab")
            with testid(ui.card().classes("w-full"), "wizard-b").bind_visibility_from(form, "ab"):
                ui.label(t("wizard.ab_hint")).classes("text-xs text-slate-500")
                with ui.row().classes("items-center w-96"):
                    bind(ui.slider(min=5, max=95, step=5).classes("w-64"), "b_percent", "b-percent")
                    ui.label().bind_text_from(
                        form, "b_percent", lambda v: t("wizard.ab_share", share=f"{v}%")
                    )
                treatment_fields("b_", "b-")
            nav(stepper)
        with ui.step(t("wizard.when")):
            kinds = {
                k: t(f"campaigns.kind.{k}")
                for k in (CampaignKind.BROADCAST.value, CampaignKind.TRIGGER.value)
            }
            bind(ui.radio(kinds).props("inline"), "kind", "kind")
            with ui.row():
                bind(ui.input(t("wizard.start_day")).props("type=date"), "start_day", "start-day")
                bind(ui.input(t("wizard.start_time")).props("type=time"), "start_time", "start-time")
                bind(ui.input(t("wizard.end_day")).props("type=date"), "end_day", "end-day")
            ui.label(t("wizard.schedule_hint", zone=str(zone))).classes("text-xs text-slate-500")
            recurrence = {r: t(f"wizard.recurrence.{r}") for r in ("once", "daily", "weekly")}
            bind(
                ui.select(recurrence, label=t("wizard.recurrence")), "recurrence", "recurrence"
            ).bind_visibility_from(form, "kind", lambda v: v == CampaignKind.BROADCAST.value)
            with ui.row().bind_visibility_from(form, "kind", lambda v: v == CampaignKind.TRIGGER.value):
                bind(
                    ui.select({e: t(f"wizard.event.{e}") for e in TRIGGER_EVENTS}, label=t("wizard.trigger")),
                    "trigger_event",
                    "trigger",
                )
                bind(
                    ui.select({s.value: t(f"stage.{s.value}") for s in Stage}, label=t("wizard.stage")),
                    "trigger_stage",
                    "stage",
                ).bind_visibility_from(form, "trigger_event", lambda v: v == "stage_entered")
                bind(ui.number(t("wizard.delay_hours"), min=0), "delay_hours", "delay")
                bind(ui.number(t("wizard.repeat_days"), min=1), "repeat_days", "repeat")
            nav(stepper)
        with ui.step(t("wizard.limits")):
            ui.label(t("wizard.holdout")).classes("text-sm")
            with ui.row().classes("items-center w-96"):
                bind(ui.slider(min=0, max=50, step=1).classes("w-64"), "holdout_percent", "holdout")
                ui.label().bind_text_from(form, "holdout_percent", lambda v: f"{v}%")
            with ui.row():
                bind(ui.number(t("wizard.budget_coupons"), min=0), "budget_coupons", "budget-coupons")
                bind(ui.number(t("wizard.budget_points"), min=0), "budget_points", "budget-points")
                bind(ui.number(t("wizard.budget_yuan"), min=0, format="%.2f"), "budget_yuan", "budget-yuan")
            with ui.row().classes("items-center"):
                bind(
                    ui.number(t("wizard.attribution_days"), min=1, max=90), "attribution_days", "attribution"
                )
                bind(ui.checkbox(t("wizard.recall")), "recall", "recall")
            ui.label(t("wizard.caps_hint")).classes("text-xs text-slate-500")
            nav(stepper)
        with ui.step(t("wizard.review")):

            @ui.refreshable
            def review() -> None:
                try:
                    spec = build_spec(form, zone)
                except ValueError as exc:
                    ui.label(t("notify.error", detail=str(exc))).classes("text-red-700")
                    return
                summary = [
                    (t("campaigns.name"), spec["name"]),
                    (t("campaigns.goal"), t(f"campaigns.goal.{spec['goal']}")),
                    (
                        t("wizard.audience"),
                        options["segments"].get(spec.get("audience_segment_id") or "", t("wizard.everyone")),
                    ),
                    (t("wizard.treatment"), _variants_text(spec["variants"])),
                    (t("campaigns.kind"), t(f"campaigns.kind.{spec['kind']}")),
                    (t("wizard.holdout"), percent(spec["holdout_bp"] / 10_000, 0)),
                    (t("wizard.budget_yuan"), money(spec.get("budget_fen"))),
                    (t("wizard.attribution_days"), str(spec["attribution_days"])),
                ]
                with testid(ui.column().classes("gap-0"), "wizard-summary"):
                    for label, value in summary:
                        ui.label(f"{label}: {value}").classes("text-sm")

            review()
            ui.button(t("wizard.refresh"), icon="refresh", on_click=review.refresh).props(
                "flat dense no-caps"
            )

            def create() -> None:
                try:
                    spec = build_spec(form, zone)
                    with database().unit_of_work() as session:
                        created = campaigns.create_campaign(session, staff.merchant_id, spec, now=utcnow())
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = "/".join(str(p) for p in first["loc"])
                    ui.notify(t("notify.error", detail=f"{where}: {first['msg']}"), type="negative")
                    return
                except (Problem, ValueError) as exc:
                    ui.notify(t("notify.error", detail=getattr(exc, "detail", str(exc))), type="negative")
                    return
                ui.notify(t("campaigns.created"), type="positive")
                ui.navigate.to(f"/campaigns/{created.id}")

            with ui.stepper_navigation():
                ui.button(t("wizard.back"), on_click=stepper.previous).props("flat")
                testid(ui.button(t("wizard.create"), icon="check", on_click=create), "wizard-create")
        stepper.on_value_change(lambda _: review.refresh())


# ---------------------------------------------------------------- results


def results_page(campaign_id: str) -> None:
    with frame("nav.campaigns") as staff:
        if staff is None:
            return
        if not _readable(staff):
            refuse()
            return
        with database().reading() as session:
            campaign = campaigns.get_campaign(session, staff.merchant_id, campaign_id)
            found = results.campaign_results(session, staff.merchant_id, campaign_id, now=utcnow())
        if campaign is None or found is None:
            testid(ui.label(t("campaigns.missing")), "campaign-missing")
            return
        out = results_out(found)
        with ui.row().classes("items-center gap-3"):
            testid(ui.label(campaign.name).classes("text-xl font-medium"), "campaign-name")
            testid(ui.badge(t(f"campaigns.status.{campaign.status}")), "campaign-status")
            ui.label(f"{t(f'campaigns.goal.{campaign.goal}')} · {t(f'campaigns.kind.{campaign.kind}')}")
        if can_create(staff):
            with ui.row():
                for action in campaigns.allowed_actions(campaign.status):
                    if action == "schedule" and not (campaign.schedule or {}).get("start_at"):
                        continue
                    testid(
                        ui.button(
                            t(f"campaigns.action.{action}"),
                            on_click=lambda action=action: act(
                                staff, campaign_id, action, ui.navigate.reload
                            ),
                        ).props("outline dense no-caps"),
                        f"{action}-{campaign_id}",
                    )
        results_view(out, campaign)


def results_view(out: ResultsOut, campaign: campaigns.CampaignView) -> None:
    with ui.card().classes("w-full max-w-6xl"):
        ui.label(t("results.title")).classes("text-lg font-medium")
        ui.label(
            t(
                "results.summary",
                audience=number(out.audience),
                treated=number(out.treated),
                holdout=number(out.holdout),
                days=out.attribution_days,
            )
        ).classes("text-sm")
        budgets = t(
            "results.spent",
            coupons=number(campaign.spent_coupons),
            points=number(campaign.spent_points),
            money=money(campaign.spent_fen),
        )
        ui.label(budgets).classes("text-sm text-slate-600")
        testid(
            ui.table(
                columns=[
                    {
                        "name": n,
                        "label": t(f"results.{n}"),
                        "field": n,
                        "align": "left" if n == "cohort" else "right",
                    }
                    for n in ("cohort", "audience", "treated", "converted", "rate", "orders", "gmv")
                ],
                rows=[
                    {
                        "cohort": t("campaigns.group.holdout")
                        if c.group == "holdout"
                        else (c.variant or t("results.all_variants")),
                        "audience": number(c.audience),
                        "treated": number(c.treated),
                        "converted": number(c.converted),
                        "rate": percent(c.conversion_rate),
                        "orders": number(c.orders),
                        "gmv": money(c.net_gmv_fen),
                    }
                    for c in out.cohorts
                ],
            ).props("dense flat"),
            "results-cohorts",
        ).classes("w-full")
    with ui.card().classes("w-full max-w-6xl"):
        ui.label(t("results.lift")).classes("text-lg font-medium")
        rows = []
        for inc in out.increments:
            conv, gmv, roi = inc.conversion, inc.gmv, inc.roi
            rows.append(
                {
                    "variant": inc.variant or t("results.all_variants"),
                    "conversion": _pp(conv.lift),
                    "conversion_ci": f"[{_pp(conv.ci_low)}, {_pp(conv.ci_high)}]",
                    "gmv": money(gmv.lift_total_fen),
                    "gmv_ci": f"[{money(gmv.ci_low_total_fen)}, {money(gmv.ci_high_total_fen)}]",
                    "roi": _ratio(roi.value),
                    "roi_ci": f"[{_ratio(roi.ci_low)}, {_ratio(roi.ci_high)}]",
                    "significant": t("ops.yes") if conv.significant or gmv.significant else t("ops.no"),
                    "note": conv.note or gmv.note or "",
                }
            )
        names = (
            "variant",
            "conversion",
            "conversion_ci",
            "gmv",
            "gmv_ci",
            "roi",
            "roi_ci",
            "significant",
            "note",
        )
        testid(
            ui.table(
                columns=[{"name": n, "label": t(f"results.{n}"), "field": n, "align": "left"} for n in names],
                rows=rows,
            ).props("dense flat"),
            "results-lift",
        ).classes("w-full")
        ui.label(
            t(
                "results.cost",
                total=money(out.cost.total_fen),
                discount=money(out.cost.coupon_discount_fen),
                redeemed=number(out.cost.coupons_redeemed),
                points=number(out.cost.points_awarded),
            )
        ).classes("text-sm")
        overall = next((i for i in out.increments if i.variant is None), None)
        if overall is not None and overall.conversion.lift is not None:
            conv = overall.conversion
            ui.echart(
                {
                    "tooltip": {},
                    "xAxis": {
                        "type": "category",
                        "data": [t("campaigns.group.holdout"), t("campaigns.group.treatment")],
                    },
                    "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"}},
                    "series": [
                        {
                            "type": "bar",
                            "data": [
                                round((conv.holdout_rate or 0) * 100, 2),
                                round((conv.treatment_rate or 0) * 100, 2),
                            ],
                        }
                    ],
                }
            ).classes("w-full h-64")


def _pp(fraction: float | None) -> str:
    """A rate difference in percentage points."""
    return "–" if fraction is None else f"{fraction * 100:+.1f}pp"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
