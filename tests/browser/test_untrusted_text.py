"""Text from the outside world shows as text: it never runs as script or markup."""

import pytest
from playwright.sync_api import Page, expect

from engage.services import conversations as conversation_services
from engage.services.conversations import Author
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"


def expect_inert(page: Page, dialogs: list) -> None:
    """Nothing ran, nothing was injected, and the person sees the text as it was written."""
    main = page.get_by_role("main")
    expect(main.get_by_text(SCRIPT).first).to_be_visible()
    expect(main.get_by_text(IMAGE).first).to_be_visible()
    expect(main.locator("script")).to_have_count(0)
    expect(page.locator("[onerror]")).to_have_count(0)
    assert dialogs == []


def test_hostile_posts_names_and_notes_render_inert(manager_page: Page, manager):
    conversation = factories.conversation(
        text=f"Great machine {SCRIPT} {IMAGE}",
        author=Author(handle="mallory", name=f"Mallory {SCRIPT}{IMAGE}"),
    )
    conversation_services.add_note(conversation.pk, actor=manager, text=f"Careful: {IMAGE}")
    page = manager_page
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto("/queue/")
    expect_inert(page, dialogs)

    page.goto(f"/conversations/{conversation.pk}/")
    expect_inert(page, dialogs)
    expect(page.get_by_role("region", name="Internal notes")).to_contain_text("Careful:")
