"""The operations pages in a real browser, in Chinese and in English: find a member and open the
360° view, build a segment and watch the count follow, create a campaign through the wizard —
and what an analyst and a franchise store's staff may not do. What a page did is checked through
the modules' facades on the same database, not only on the page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from siyu.campaigns import facade as campaigns
from siyu.console.i18n import EN, ZH
from siyu.db import Database
from tests.browser.conftest import PASSWORD, STAFF_PASSWORD, Shop, by_id, field, login, shot

LANGUAGES = {"zh": ZH, "en": EN}


def in_language(page: Any, language: str) -> dict[str, str]:
    """Switch the signed-in console to ``language``; its label table."""
    labels = LANGUAGES[language]
    if language == "en":
        by_id(page, "header-language").click()
        page.get_by_text(EN["header.language"], exact=True).wait_for()  # the switch now offers 中文
    return labels


def choose(page: Any, testid: str, option: str) -> None:
    """Pick ``option`` (its visible label) in the select with ``testid``."""
    by_id(page, testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def segment_count(page: Any) -> int:
    return int(by_id(page, "segment-count").get_attribute("data-count"))


def wait_for_count(page: Any, expected: int) -> None:
    page.wait_for_function(
        "n => document.querySelector(\"[data-testid='segment-count']\")?.dataset.count == String(n)",
        arg=expected,
    )


@pytest.mark.parametrize("language", ["zh", "en"])
class TestOperationsInTheBrowser:
    def test_search_a_member_and_open_the_360_view(self, page: Any, shop: Shop, language: str) -> None:
        login(page, "owner", PASSWORD)
        labels = in_language(page, language)
        page.goto("/console/area/members")
        field(page, "search-value").fill("13800000003")
        by_id(page, "search-button").click()
        by_id(page, "member-id").wait_for()
        member_id = shop.members["13800000003"]
        assert member_id in by_id(page, "member-id").inner_text()
        identities = by_id(page, "member-identities").inner_text()
        assert "138****0003" in identities
        assert "13800000003" not in page.content()  # never in clear, anywhere on the page
        assert by_id(page, "member-timeline").inner_text().strip()
        assert labels["header.logout"] in by_id(page, "header-logout").inner_text()
        # empty tables (no coupons, no campaigns yet) say so in the reader's language, not Quasar's
        by_id(page, "member-coupons").get_by_text(labels["table.no_data"]).wait_for()
        shot(page, f"member-360-{language}")

    def test_build_a_segment_and_see_the_count_change(self, page: Any, shop: Shop, language: str) -> None:
        login(page, "owner", PASSWORD)
        labels = in_language(page, language)
        page.goto("/console/area/segments")
        wait_for_count(page, len(shop.members))  # no condition: every member
        choose(page, "rule-add", labels["rule.kind.attribute"])  # "at least one order"
        buyers = sum(1 for phone in shop.members if phone in ("13800000001", "13800000002", "13800000003"))
        wait_for_count(page, buyers)
        by_id(page, "rule-0-not").click()
        wait_for_count(page, len(shop.members) - buyers)
        shot(page, f"segment-builder-{language}")
        assert segment_count(page) == len(shop.members) - buyers

    def test_create_a_campaign_through_the_wizard(
        self, page: Any, shop: Shop, db: Database, language: str
    ) -> None:
        login(page, "owner", PASSWORD)
        labels = in_language(page, language)
        page.goto("/console/area/campaigns")
        by_id(page, "campaign-new").click()
        name = f"唤醒-{language}"
        field(page, "wizard-name").fill(name)
        next_step = by_id(page, "wizard-next").locator("visible=true")
        next_step.click()  # → audience (everyone)
        next_step.click()  # → treatment
        choose(page, "wizard-action", labels["wizard.action.points"])
        field(page, "wizard-points").fill("50")
        next_step.click()  # → when (once, from today)
        next_step.click()  # → holdout, budget
        field(page, "wizard-budget-points").fill("10000")
        next_step.click()  # → review
        shot(page, f"campaign-wizard-review-{language}")
        by_id(page, "wizard-create").click()
        by_id(page, "results-cohorts").wait_for()  # the new campaign's own page (the toast may be gone)
        assert "/console/campaigns/cmp_" in page.url
        shot(page, f"campaign-results-{language}")
        with db.reading() as session:
            (created,) = campaigns.list_campaigns(session, shop.merchant_id)
        assert (created.name, created.status) == (name, "draft")
        assert created.variants[0]["treatments"] == [{"action": "points", "points": 50}]


class TestPermissionsInTheBrowser:
    def test_an_analyst_cannot_create_campaigns(self, page: Any, shop: Shop) -> None:
        login(page, "analyst", STAFF_PASSWORD)
        page.goto("/console/area/campaigns")
        page.get_by_text(ZH["nav.campaigns"]).first.wait_for()
        assert by_id(page, "campaign-new").count() == 0
        page.goto("/console/campaigns/new")
        by_id(page, "refused").wait_for()
        assert by_id(page, "wizard-create").count() == 0
        shot(page, "campaigns-analyst-refused")

    def test_franchise_staff_see_only_their_stores_members(self, page: Any, shop: Shop) -> None:
        login(page, "franchisee", STAFF_PASSWORD)
        page.goto("/console/area/members")
        listed = by_id(page, "member-list")
        listed.wait_for()
        franchise = {shop.members[p] for p in ("13800000003", "13800000004")}
        page.wait_for_function(
            "ids => ids.every(id => document.body.innerText.includes(id))", arg=sorted(franchise)
        )
        text = listed.inner_text()
        others = set(shop.members.values()) - franchise
        assert not [m for m in others if m in text]
        # and a member of another store is "not found", also by direct address
        page.goto(f"/console/members/{sorted(others)[0]}")
        by_id(page, "member-missing").wait_for()
        shot(page, "members-franchise-scoped")
        assert re.search(r"mbr_", text)
