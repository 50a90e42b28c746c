"""What a signed-in staff member may do and see on the operations pages.

Roles map onto the API's own scopes (``siyu.tenancy.scopes.ROLE_SCOPES``): a page asks
:func:`may` with the scope the equivalent API endpoint requires. Staff limited to some stores
(franchise staff) see only the members of those stores (:func:`member_scope`).
"""

from __future__ import annotations

from typing import Any

from nicegui import ui
from sqlalchemy import Select

from siyu.console.i18n import t
from siyu.events import facade as events
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope, staff_may


def may(staff: StaffView, scope: Scope) -> bool:
    return staff_may(staff.role.value, scope)


def actor(staff: StaffView) -> str:
    """How the audit log names a console user."""
    return f"staff:{staff.id}"


def member_scope(staff: StaffView) -> list[Select[Any]]:
    """The member-id sub-queries a staff member's view is limited to (none: every member)."""
    return [events.members_of_stores(staff.merchant_id, staff.store_ids)] if staff.limited_to_stores else []


def refuse() -> None:
    """What a page shows a role that may not use it (the page itself refuses, not only the button)."""
    from siyu.console.fmt import testid

    testid(ui.label(t("ops.refused")).classes("text-red-700"), "refused")
