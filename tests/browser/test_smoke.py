from __future__ import annotations

from typing import Any

from tests.browser.conftest import PASSWORD, Shop, by_id, login, shot


def test_owner_signs_in(page: Any, shop: Shop) -> None:
    login(page, "owner", PASSWORD)
    shot(page, "smoke")
    assert by_id(page, "header-logout").is_visible()
