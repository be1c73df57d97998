"""Working the queue from the keyboard: move, open, claim, and the help that lists the keys."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row(page: Page, text: str):
    return page.get_by_role("row").filter(has_text=text)


@pytest.fixture
def two_rows(db):
    """Two conversations; the older one is due first, so it is the queue's first row."""
    now = timezone.now()
    first = factories.conversation(text="First in line", created_at=now - timedelta(hours=2))
    second = factories.conversation(text="Second in line", created_at=now - timedelta(hours=1))
    return first, second


def test_j_and_k_move_through_the_rows_and_o_or_enter_opens_one(manager_page: Page, two_rows):
    first, second = two_rows
    page = manager_page
    page.goto("/queue/")

    page.keyboard.press("j")
    expect(row(page, "First in line")).to_be_focused()
    page.keyboard.press("j")
    expect(row(page, "Second in line")).to_be_focused()
    page.keyboard.press("k")
    expect(row(page, "First in line")).to_be_focused()
    page.keyboard.press("o")
    expect(page).to_have_url(re.compile(rf"/conversations/{first.pk}/$"))

    page.goto("/queue/")
    expect(row(page, "First in line")).to_be_focused()  # the queue remembers where you were
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/conversations/{second.pk}/$"))


def test_question_mark_lists_the_shortcuts_esc_closes_and_c_claims(
    manager_page: Page, two_rows, screenshot
):
    first, _second = two_rows
    page = manager_page
    page.goto("/queue/")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_hidden()

    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    for action in ("Claim the next conversation", "Next / previous conversation", "Search"):
        expect(help_dialog).to_contain_text(action)
    screenshot(page, "queue-shortcut-help", full_page=False)
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(rf"/conversations/{first.pk}/$"))
    expect(
        page.get_by_role("status").filter(has_text=f"You claimed conversation #{first.pk}.")
    ).to_be_visible()
