"""Reachability API bodies. Answers reuse the facade's frozen views (see ``facade.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from siyu.kit.pagination import Page
from siyu.reachability.facade import ConsentStateView, ConsentView
from siyu.reachability.models import ConsentAction

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ConsentIn(BaseModel):
    """A consent the member gave or withdrew, recorded with its time and how it was obtained."""

    model_config = ConfigDict(extra="forbid")

    purpose: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="sms_marketing, email_marketing, phone_marketing, personalised_recommendation, "
        "third_party_sharing, location, or your own custom.…",
        examples=["sms_marketing"],
    )
    action: ConsentAction
    at: AwareDatetime | None = Field(
        default=None, description="when the member consented or withdrew; default: now"
    )
    method: Short | None = Field(default=None, description="how: mini_program_popup, paper_form, sms_reply…")
    notice_version: Short | None = Field(default=None, description="the privacy notice the member saw")
    evidence: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="a reference to the proof (a stored form, a screenshot id)"
    )


class ConsentRecorded(BaseModel):
    record: ConsentView
    current: ConsentStateView = Field(description="the consent in force for this purpose after the record")


class ConsentsPage(Page[ConsentView]):
    """The member's consent log (oldest first, paginated) and the consent in force per purpose."""

    current: list[ConsentStateView]


class GuideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class GuideOut(BaseModel):
    member_id: str
    staff_id: str | None
    assigned: bool
