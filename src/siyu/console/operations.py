"""The operations and management pages (members, segments, campaigns, loyalty, staff & access,
settings): which function draws each ``/area/{area}`` and the pages with paths of their own."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from siyu.console import campaigns, loyalty, manage, members, segments
from siyu.tenancy.facade import StaffView

AREAS: dict[str, Callable[[StaffView], None]] = {
    "members": members.members_area,
    "segments": segments.segments_area,
    "campaigns": campaigns.campaigns_area,
    "loyalty": loyalty.loyalty_area,
    "staff": manage.staff_area,
    "settings": manage.settings_area,
}


def register_operation_pages() -> None:
    """Pages with paths of their own (relative to the console's mount point)."""
    ui.page("/members/{member_id}")(members.member_page)
    ui.page("/campaigns/new")(campaigns.wizard_page)
    ui.page("/campaigns/{campaign_id}")(campaigns.results_page)
