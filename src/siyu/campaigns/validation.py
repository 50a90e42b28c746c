"""Checks of a campaign's specification that need more than its shape: totals, existence of
segments and templates, rules (via the segments facade), and what each kind needs. Each failure
is a 422 naming the JSON pointer of the bad field (``/variants/1/treatments/0/template_id``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns.assignment import BASIS_POINTS
from siyu.campaigns.models import CampaignKind, TreatmentAction
from siyu.coupons import facade as coupons
from siyu.events.schemas import BUILT_IN_TYPES, CUSTOM_TYPE
from siyu.kit.problems import invalid_field
from siyu.lifecycle.rules import Stage
from siyu.messaging import facade as messaging
from siyu.segments import facade as segments

TRIGGER_EVENTS_EXTRA = ("stage_entered", "birthday")
PAYMENT_SUCCESS = "payment_success"
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TREATMENT_FIELDS: dict[str, set[str]] = {
    TreatmentAction.COUPON: {"template_id"},
    TreatmentAction.POINTS: {"points"},
    TreatmentAction.MESSAGE: {"template_id", "variables"},
    TreatmentAction.GUIDE_TASK: {"title", "body"},
}
MAX_POINTS = 1_000_000


def check_rule(rule: object, pointer: str) -> None:
    try:
        segments.check_rule(rule)
    except segments.RuleInvalid as exc:
        raise invalid_field(pointer + (exc.pointer or ""), exc.detail) from None


def check_spec(session: Session, merchant_id: str, spec: Mapping[str, Any]) -> None:
    """Raise a 422 for the first thing wrong with ``spec`` (a :class:`CampaignIn` as JSON)."""
    kind = spec["kind"]
    if spec.get("audience_segment_id") and spec.get("audience_rule") is not None:
        raise invalid_field("/audience_rule", "give an audience segment or an inline rule, not both")
    segment_id = spec.get("audience_segment_id")
    if segment_id and segments.get_segment(session, merchant_id, segment_id) is None:
        raise invalid_field("/audience_segment_id", f"no segment {segment_id}")
    if spec.get("audience_rule") is not None:
        check_rule(spec["audience_rule"], "/audience_rule")
    check_variants(session, merchant_id, spec["variants"], needs_treatments=kind != CampaignKind.JOURNEY)
    check_schedule(spec.get("schedule"))
    check_trigger(spec.get("trigger"), required=kind == CampaignKind.TRIGGER)
    if kind != CampaignKind.TRIGGER and spec.get("trigger") is not None:
        raise invalid_field("/trigger", "only a trigger campaign has a trigger")
    if kind == CampaignKind.JOURNEY and not spec.get("journey"):
        raise invalid_field("/journey", "a journey campaign needs its graph")
    if kind != CampaignKind.JOURNEY and spec.get("journey") is not None:
        raise invalid_field("/journey", "only a journey campaign has a graph")
    if kind == CampaignKind.PAYMENT_SUCCESS and spec.get("placement") != PAYMENT_SUCCESS:
        raise invalid_field("/placement", f"a payment-success campaign has placement {PAYMENT_SUCCESS!r}")
    if kind != CampaignKind.PAYMENT_SUCCESS and spec.get("placement") is not None:
        raise invalid_field("/placement", "only a payment-success campaign has a placement")


def check_variants(session: Session, merchant_id: str, variants: Any, *, needs_treatments: bool) -> None:
    if not variants:
        raise invalid_field("/variants", "a campaign needs at least one variant")
    keys = [v["key"] for v in variants]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            raise invalid_field(f"/variants/{index}/key", f"variant key {key!r} is used twice")
    total = sum(int(v["weight_bp"]) for v in variants)
    if total != BASIS_POINTS:
        raise invalid_field("/variants", f"variant weights must sum to 10000 basis points, not {total}")
    for index, variant in enumerate(variants):
        treatments = variant.get("treatments") or []
        if needs_treatments and not treatments:
            raise invalid_field(f"/variants/{index}/treatments", "a variant needs at least one treatment")
        for position, treatment in enumerate(treatments):
            check_treatment(session, merchant_id, treatment, f"/variants/{index}/treatments/{position}")


def check_treatment(session: Session, merchant_id: str, treatment: Any, pointer: str) -> None:
    """One treatment JSON (also used by journeys for their action nodes)."""
    if not isinstance(treatment, Mapping):
        raise invalid_field(pointer, "a treatment is an object with an action")
    action = treatment.get("action")
    if action not in TREATMENT_FIELDS:
        known = ", ".join(sorted(TREATMENT_FIELDS))
        raise invalid_field(pointer + "/action", f"unknown action {action!r}; actions are {known}")
    for name in treatment:
        if name != "action" and name not in TREATMENT_FIELDS[action]:
            raise invalid_field(f"{pointer}/{name}", f"a {action} treatment has no field {name!r}")
    if action == TreatmentAction.COUPON:
        template_id = treatment.get("template_id")
        template = (
            coupons.get_template(session, merchant_id, template_id) if isinstance(template_id, str) else None
        )
        if template is None:
            raise invalid_field(pointer + "/template_id", f"no coupon template {template_id!r}")
        if template.status == "ended":
            raise invalid_field(pointer + "/template_id", f"coupon template {template_id} has ended")
    elif action == TreatmentAction.POINTS:
        value = treatment.get("points")
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_POINTS:
            raise invalid_field(pointer + "/points", f"points must be an integer from 1 to {MAX_POINTS}")
    elif action == TreatmentAction.MESSAGE:
        template_id = treatment.get("template_id")
        if not isinstance(template_id, str) or not _TEMPLATE_ID.match(template_id):
            raise invalid_field(pointer + "/template_id", "give the message template's id")
        message_template = messaging.get_template(session, merchant_id, template_id)
        if message_template is None:
            raise invalid_field(pointer + "/template_id", f"no message template {template_id!r}")
        if message_template.kind != "marketing":
            raise invalid_field(
                pointer + "/template_id",
                f"template {template_id} is {message_template.kind}: a campaign sends marketing messages "
                "(counted against the caps, held in quiet hours)",
            )
        variables = treatment.get("variables", {})
        if not isinstance(variables, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
        ):
            raise invalid_field(pointer + "/variables", "variables map names to text")
        missing = [name for name in message_template.variables if name not in variables]
        if missing:
            names = ", ".join("{{" + name + "}}" for name in missing)
            raise invalid_field(pointer + "/variables", f"template {template_id} needs {names}")
    else:
        title, body = treatment.get("title"), treatment.get("body", "")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 100:
            raise invalid_field(pointer + "/title", "a guide task needs a title of 1–100 characters")
        if not isinstance(body, str) or len(body) > 2000:
            raise invalid_field(pointer + "/body", "a guide task body is text of at most 2000 characters")


def check_schedule(schedule: Mapping[str, Any] | None) -> None:
    if schedule is None:
        return
    from siyu.campaigns.service import parse_time

    start, end = parse_time(schedule["start_at"]), parse_time(schedule.get("end_at"))
    if start is not None and end is not None and end <= start:
        raise invalid_field("/schedule/end_at", "end_at must be after start_at")
    if schedule.get("recurrence", "once") != "once" and not schedule.get("local_time"):
        raise invalid_field("/schedule/local_time", "a recurring schedule needs local_time (HH:MM)")


def check_trigger(trigger: Mapping[str, Any] | None, *, required: bool) -> None:
    if trigger is None:
        if required:
            raise invalid_field("/trigger", "a trigger campaign needs a trigger")
        return
    event = trigger["event"]
    if event not in BUILT_IN_TYPES and event not in TRIGGER_EVENTS_EXTRA and not CUSTOM_TYPE.match(event):
        known = ", ".join([*sorted(BUILT_IN_TYPES), *TRIGGER_EVENTS_EXTRA])
        raise invalid_field("/trigger/event", f"unknown trigger {event!r}; triggers are {known} or x_…")
    stage = trigger.get("stage")
    if event == "stage_entered":
        if stage not in {s.value for s in Stage}:
            known = ", ".join(s.value for s in Stage)
            raise invalid_field("/trigger/stage", f"stage_entered needs a stage: {known}")
    elif stage is not None:
        raise invalid_field("/trigger/stage", "only a stage_entered trigger has a stage")
    if trigger.get("condition") is not None:
        check_rule(trigger["condition"], "/trigger/condition")
