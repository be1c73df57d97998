"""Issue 4's loop in the browser: evidence from conversations, demand, merge, ship, tell.

A community manager creates a ticket from one conversation and links a second; the
product team sees demand 2, merges a duplicate ticket into it, ships it; the follow-ups
show in the queue; the manager tells one person and the ticket says so.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_react(actor, text: str):
    conversation = factories.conversation(text=text)
    conversation_services.assign(conversation.pk, actor, actor=actor)
    conversation_services.advance(conversation.pk, actor=actor)
    conversation_services.log_reply(conversation.pk, actor=actor, text="Thanks, noted!")
    return conversation_services.advance(conversation.pk, actor=actor)


def status(page: Page, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def test_evidence_demand_merge_ship_and_tell(new_context, log_in, manager, product):
    first = in_react(manager, "Please remind me in the app when to descale")
    second = in_react(manager, "A descaling reminder in the app would help me")
    duplicate_source = factories.conversation(text="Descale alert please")
    duplicate = feedback_services.create_ticket(
        actor=manager, title="Descale alert", conversation_id=duplicate_source.pk, quote="alert"
    )

    manager_context, product_context = new_context(), new_context()
    log_in(manager_context, manager)
    log_in(product_context, product)
    cm, pm = manager_context.new_page(), product_context.new_page()

    # The community manager creates the ticket from the first conversation...
    cm.goto(f"/conversations/{first.pk}/")
    feedback = cm.get_by_role("region", name="Product feedback")
    feedback.get_by_text("Create a ticket from this conversation").click()
    feedback.get_by_label("Title").fill("Descaling reminder in the app")
    feedback.get_by_role("button", name="Create ticket").click()
    status(cm, "Ticket “Descaling reminder in the app” created")
    ticket_id = int(re.search(r"#(\d+) Descaling reminder", feedback.inner_text()).group(1))

    # ...and links the second one to it, from the suggestions.
    cm.goto(f"/conversations/{second.pk}/")
    similar = cm.get_by_role("region", name="Product feedback").locator(".similar-tickets")
    expect(similar).to_contain_text("Descaling reminder in the app")
    similar.get_by_role("button", name="Link with this quote").first.click()
    status(cm, "Linked to ticket “Descaling reminder in the app”.")

    # The product team sees two people asking, merges the duplicate in, and ships.
    pm.goto(f"/feedback/{ticket_id}/")
    expect(pm.locator("[data-demand]")).to_have_text("2")
    pm.goto(f"/feedback/{duplicate.pk}/")
    pm.get_by_text("Merge into another ticket").click()
    pm.get_by_label("Merge into ticket number").fill(str(ticket_id))
    pm.get_by_role("button", name="Merge").click()
    expect(pm).to_have_url(re.compile(rf"/feedback/{ticket_id}/$"))
    expect(pm.locator("[data-demand]")).to_have_text("3")

    pm.get_by_label("New status").select_option("shipped")
    pm.get_by_label("Note to the people who asked (optional)").fill("In app version 2.4")
    pm.get_by_role("button", name="Change status").click()
    expect(pm.locator("[data-told]")).to_contain_text("told 0 of 3 people")

    # The follow-ups are in the queue; telling one person shows on the ticket.
    cm.goto("/queue/?follow_up=yes&state=")
    for conversation in (first, second, duplicate_source):
        expect(cm.locator(f"tr[data-row-id='{conversation.pk}']")).to_be_visible()
    cm.goto(f"/conversations/{first.pk}/")
    expect(cm.get_by_role("note")).to_contain_text("In app version 2.4")
    thread = cm.get_by_role("region", name="Thread")
    thread.get_by_label(re.compile(r"^Reply")).fill("It shipped in version 2.4!")
    thread.get_by_role("button", name="Log reply").click()
    status(cm, "Reply logged.")

    pm.reload()
    expect(pm.locator("[data-told]")).to_contain_text("told 1 of 3 people")
