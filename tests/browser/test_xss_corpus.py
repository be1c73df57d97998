"""Hostile text in every field a person can see renders inert on every page (issue 7).

Each payload of tests/data/xss.txt (script tags, event handlers, javascript: and data: URLs,
attribute breaking, template syntax, Markdown tricks, encoded forms, mutation-XSS shapes,
formula injection, a very long one) goes into the fields people fill in or that arrive
from the networks: post text, author name and handle, post and profile URLs, source names
and keywords, notes, replies, ticket titles, problems, product areas and evidence quotes,
tags, saved replies and views, user names, team and routing rule names, restart and
no-change reasons, ticket status notes, notifications, API token names. Then a community
manager, the product team and staff visit every page they have, and on each Chromium shows:
no dialog, no `window.__xss`, no CSP violation (something tried to run), no element with an
on* attribute, no javascript:/data: link or source, no injected iframe/object/style/...,
no script but the app's own, and the payloads themselves, as text.

One test walks every page: the data is built once (a transactional database cannot share
it between tests), and every page's problems are gathered before failing, so one run lists
them all.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import django_rq
import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page

from engage.choices import Priority, Role
from engage.models import (
    Contact,
    Conversation,
    Message,
    Notification,
    RoutingRule,
    Source,
    Tag,
    Team,
)
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services import presence as presence_services
from engage.services import reaction as reaction_services
from engage.services import saved_replies as saved_reply_services
from engage.services import saved_views as saved_view_services
from engage.services import sources as source_services
from engage.services import tags as tag_services
from engage.services import targets as target_services
from engage.services import tokens as token_services
from engage.services.conversations import Author
from tests import factories
from tests.conftest import work

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CORPUS = Path(__file__).resolve().parent.parent / "data" / "xss.txt"
PAYLOADS = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def p(number: int) -> str:
    """Payload `number`, counted from 1 as the file's lines (and its xss-N markers) are."""
    return PAYLOADS[number - 1]


# The queue shows texts up to 140 characters whole (the long one is cut there).
SHORT_TEXTS = tuple(payload for payload in PAYLOADS if len(payload) <= 140)


def tag_name(number: int) -> str:
    """Payload `number` as the tag the tag service makes of it (lower case, dashes)."""
    return tag_services.clean_tag_names([p(number)])[0]


# URLs a post, a profile, a reply or a feed may carry: none may become a clickable link
# that runs script (http(s) ones may, harmlessly). The services refuse the ones that are not
# http(s), so the corpus plants them in the rows (with_urls): data stored before that check,
# or by a way in yet to come, must still be shown inert.
HOSTILE_URLS = [
    "javascript:alert('xss-5')",
    " JaVaScRiPt:alert('xss-5')",
    "data:text/html,<script>alert('xss-29')</script>",
    "https://example.com/\"><img src=x onerror=alert('xss-6')>",
    "vbscript:msgbox('xss-5')",
]


def with_urls(conversation, *, url: str, profile_url: str) -> None:
    """Plant addresses in a conversation, its opening message and its contact, as stored
    before the services checked them."""
    Conversation.objects.filter(pk=conversation.pk).update(url=url)
    Message.objects.filter(conversation=conversation).update(url=url)
    Contact.objects.filter(pk=conversation.contact_id).update(profile_url=profile_url)


# Run in the page after it loaded: every sign that a payload became markup or script.
INSPECT = r"""() => {
  const problems = [];
  const show = (el) => {
    const html = el.outerHTML.replace(/\s+/g, ' ');
    return html.length > 160 ? html.slice(0, 160) + '…' : html;
  };
  const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'data', 'poster',
    'background', 'xlink:href', 'codebase', 'cite', 'longdesc', 'ping', 'srcset']);
  const RUNS = /^(javascript|vbscript|data):/i;
  for (const el of document.querySelectorAll('*')) {
    for (const attribute of el.attributes) {
      const name = attribute.name.toLowerCase();
      // Browsers ignore control characters and spaces around a URL's scheme.
      const value = attribute.value.replace(/[\u0000-\u0020\u007f-\u00a0]+/g, '');
      if (name.startsWith('on')) {
        problems.push(`event handler attribute ${name}: ${show(el)}`);
      } else if (name === 'srcdoc') {
        problems.push(`srcdoc attribute: ${show(el)}`);
      } else if (URL_ATTRIBUTES.has(name) && RUNS.test(value)
                 && !(el.tagName === 'LINK' && el.rel === 'icon' && value === 'data:,')) {
        problems.push(`${name}=${attribute.value.slice(0, 60)}: ${show(el)}`);
      } else if (name === 'style' && /xss|javascript:|url\(|expression\(|@import/i.test(value)) {
        problems.push(`style attribute from a payload: ${show(el)}`);
      }
    }
  }
  const injected = 'iframe, frame, frameset, object, embed, applet, base, meta, style, link, '
    + 'math, noscript, marquee, portal';
  for (const el of document.body.querySelectorAll(injected)) {
    problems.push(`injected element: ${show(el)}`);
  }
  for (const script of document.scripts) {
    const type = (script.getAttribute('type') || '').trim().toLowerCase();
    if (type === 'application/json') continue;  // json_script data: never runs
    const own = script.src.startsWith(location.origin + '/static/');
    if (!own && !script.nonce) problems.push(`script that is not the app's: ${show(script)}`);
  }
  if (typeof window.__xss !== 'undefined') problems.push(`window.__xss = ${window.__xss}`);
  for (const violation of window.__cspViolations || []) {
    problems.push(`CSP violation: ${violation}`);
  }
  return problems;
}"""

# What a person reads in the page's main content: its text and the values of its fields.
MAIN_TEXT = r"""() => {
  const main = document.querySelector('main') || document.body;
  const parts = [main.innerText];
  for (const el of main.querySelectorAll('input:not([type=hidden]), textarea')) {
    parts.push(el.value);
  }
  return parts.join('\n');
}"""

# Recorded before any of the page's own code runs, on every page of the context.
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || 'inline'}: ${event.sample || ''}`
  );
});
"""


@dataclass
class Visitor:
    """One person's browser tab, and everything suspicious it saw."""

    name: str
    page: Page
    problems: list = field(default_factory=list)
    _events: list = field(default_factory=list)

    def __post_init__(self):
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self._events.append(f"script error: {error}"))

    def _dialog(self, dialog) -> None:
        self._events.append(f"dialog ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    def _console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self._events.append(f"console: {text[:300]}")

    def check(self, where: str, *, shows: tuple = (), shows_any: bool = True) -> str:
        """Inspect the page as loaded; `shows` are payloads its main content must show as
        text (and with `shows_any`, at least one payload must be there). Returns the text."""
        problems = self.page.evaluate(INSPECT) + self._events
        self._events.clear()
        text = self.page.evaluate(MAIN_TEXT)
        missing = [payload for payload in shows if payload not in text]
        if missing:
            problems.append(f"not shown as text: {[m[:60] for m in missing]}")
        if shows_any and not any(payload in text for payload in PAYLOADS):
            problems.append("no payload shown as text: the data is not on this page")
        self.problems.extend(f"{self.name} {where}: {problem}" for problem in problems)
        return text

    def lists(self, where: str, text: str) -> None:
        """The page's table of conversations shows `text`."""
        rows = self.page.locator("[data-rows]")
        if not rows.count() or text not in rows.inner_text():
            self.problems.append(f"{self.name} {where}: does not list {text[:60]!r}")

    def visit(
        self, path: str, *, shows: tuple = (), shows_any: bool = True, status: int = 200
    ) -> str:
        """Open `path` (answered with `status`) and check it."""
        response = self.page.goto(path)
        if response is None or response.status != status:
            got = response.status if response else "no response"
            self.problems.append(f"{self.name} {path}: HTTP {got}, expected {status}")
        return self.check(path, shows=shows, shows_any=shows_any)


@dataclass
class World:
    """What the hostile data was stored as: the ids the pages need."""

    cm: object
    mallory: object
    pm: object
    boss: object
    rich: object
    others: list
    in_stage: dict
    routed: object
    tickets: dict
    feeds: list
    saved_replies: list
    team: object
    rule: object
    token: object


def _conversations(cm, mallory):
    """One conversation per payload (text, external id, author name and handle, hostile
    URLs, hostile source names), assigned to people whose names are payloads too."""
    sources = [p(1), p(10), p(19)]
    conversations = []
    for number, payload in enumerate(PAYLOADS, start=1):
        handle = payload if len(payload) <= 200 else "xss-38 " + p(1)
        name = p(number % len(PAYLOADS) + 1)
        conversation = factories.conversation(
            source=sources[number % len(sources)],
            external_id=f"{number} {payload[:200]}",
            text=payload,
            author=Author(handle=handle, name=name if len(name) <= 200 else p(4)),
        )
        with_urls(
            conversation,
            url=HOSTILE_URLS[(number + 1) % len(HOSTILE_URLS)],
            profile_url=HOSTILE_URLS[number % len(HOSTILE_URLS)],
        )
        conversations.append(conversation)
    for conversation in conversations[::3]:
        conversation_services.assign(conversation.pk, mallory, actor=cm)
    for conversation in conversations[1::3]:
        conversation_services.assign(conversation.pk, cm, actor=cm)
    # Some move on, so that each stage of the queue has rows.
    interact, react, sell = conversations[1], conversations[4], conversations[7]
    for conversation in (interact, react, sell):
        conversation_services.advance(conversation.pk, actor=cm)
    for conversation in (react, sell):
        conversation_services.log_reply(conversation.pk, actor=cm, text=p(15))
        conversation_services.advance(conversation.pk, actor=cm)
    reaction_services.record_no_change(sell.pk, actor=cm, reason=p(22))
    in_stage = {"listen": conversations[0], "interact": interact, "react": react, "sell": sell}
    return conversations, in_stage


def _rich_conversation(cm, mallory, pm):
    """A conversation that has been through everything: notes, replies, both reactions,
    restarts, tickets (one shipped, one merged), tags, follow-ups and notifications."""
    author = Author(handle=p(36), name=p(25))
    rich = factories.conversation(source=p(1), text=p(38), author=author)
    with_urls(rich, url=HOSTILE_URLS[0], profile_url=HOSTILE_URLS[0])
    for number in (20, 21):
        factories.conversation(source=p(1), text=f"again: {p(number)}", author=author)
    pk = rich.pk
    conversation_services.assign(pk, cm, actor=cm)
    tag_services.change_tags(pk, actor=cm, add=[p(2), p(3), p(9), p(24), p(28), p(37)])
    # Every payload as a note: each goes through Markdown and the sanitiser.
    for payload in PAYLOADS:
        conversation_services.add_note(pk, actor=cm, text=payload)
    conversation_services.add_note(pk, actor=mallory, text=f"{p(11)} @cm")
    conversation_services.advance(pk, actor=cm)
    for text, url in ((p(17), HOSTILE_URLS[0]), (p(38), HOSTILE_URLS[2])):
        reply = conversation_services.log_reply(pk, actor=cm, text=text)
        Message.objects.filter(pk=reply.pk).update(url=url)
    conversation_services.advance(pk, actor=cm)
    reaction_services.record_no_change(pk, actor=cm, reason=p(7))
    conversation_services.restart(pk, actor=cm, reason=p(31))
    conversation_services.advance(pk, actor=cm)
    conversation_services.log_reply(pk, actor=cm, text=p(32))
    conversation_services.advance(pk, actor=cm)
    shipped = reaction_services.create_ticket(
        pk,
        actor=cm,
        title=p(31),
        problem=f"{p(17)}\n\n{p(14)}\n{p(12)}",
        product_area=p(6),
        quote=p(26),
    ).result
    conversation_services.restart(pk, actor=cm, reason=p(4))
    kept = feedback_services.create_ticket(actor=pm, title=p(19), problem=p(2), product_area=p(9))
    reaction_services.link_evidence(kept.pk, pk, actor=cm, quote=p(20))
    duplicate = feedback_services.create_ticket(
        actor=pm, title=p(3), problem=p(13), conversation_id=pk, quote=p(24)
    )
    feedback_services.merge_tickets(duplicate.pk, kept.pk, actor=pm)
    feedback_services.update_ticket(shipped.pk, actor=pm, owner=pm)
    feedback_services.update_ticket(kept.pk, actor=pm, owner=pm)
    feedback_services.change_ticket_status(shipped.pk, "shipped", actor=pm, note=p(35))
    presence_services.touch(pk, user=mallory)
    return rich, {"shipped": shipped, "kept": kept, "duplicate": duplicate}


def build_world() -> World:
    cm = factories.user("cm", role=Role.COMMUNITY_MANAGER, first_name=p(2), last_name=p(23))
    mallory = factories.user(
        "mallory", role=Role.COMMUNITY_MANAGER, first_name=p(6), last_name=p(7)
    )
    pm = factories.user("pm", role=Role.PRODUCT_TEAM, first_name=p(17), last_name=p(18))
    boss = factories.user(
        "boss", role=None, is_staff=True, is_superuser=True, first_name=p(8), last_name=p(30)
    )
    # Teams and routing rules are set up in the admin only: no service writes them.
    team = Team.objects.create(name=p(24))
    team.members.add(mallory)
    rule = RoutingRule.objects.create(name=p(13), keywords="routeme", assignee=mallory)
    RoutingRule.objects.create(name=p(30), keywords="no such word", team=team, position=1)
    rule.add_tags.add(Tag.objects.create(name=tag_name(5)))

    others, in_stage = _conversations(cm, mallory)
    routed = factories.conversation(source=p(10), text=f"please routeme {p(11)}")
    rich, tickets = _rich_conversation(cm, mallory, pm)
    tag_services.change_tags(others[0].pk, actor=cm, add=[p(6), p(2)])

    feeds = [
        source_services.add_feed(
            actor=boss,
            name=p(33),
            url=f"http://evil.example/feed?x={p(6)}",
            keywords=f"{p(2)}, {p(5)}",
        ),
        source_services.add_feed(
            actor=boss, name=p(27), url="https://evil.example/atom", keywords=p(9)
        ),
        source_services.add_feed(actor=boss, name=p(21), url="https://evil.example/gone"),
    ]
    # A failed poll stores what the server said; a hostile server says this.
    Source.objects.filter(pk=feeds[0].pk).update(
        last_error=f"{p(26)}\n{p(17)}", last_error_at=timezone.now()
    )
    Source.objects.filter(pk=feeds[1].pk).update(
        last_error=p(38), last_error_at=timezone.now() - timedelta(minutes=5)
    )
    source_services.remove(feeds[2].pk, actor=boss)

    saved_replies = [
        saved_reply_services.create_saved_reply(
            actor=cm, title=p(18), text=f"Hi {{name}}, {p(17)}"
        ),
        saved_reply_services.create_saved_reply(actor=cm, title=p(8), text=p(1)),
        saved_reply_services.create_saved_reply(
            actor=cm, title=p(37), text=f"{p(2)} {{handle}}", language="it"
        ),
    ]
    saved_view_services.save_view(
        actor=cm, name=p(6), query=urlencode({"q": "xss", "tag": tag_name(2)})
    )
    token, _raw = token_services.create_token(boss, name=p(2))
    target_services.set_target(Priority.URGENT, actor=boss, minutes=45)

    # Jobs (enrichment and routing, follow-up notifications) ran at commit in-process;
    # against Redis they wait for a worker: run them here.
    work(django_rq.get_queue("default"))
    return World(
        cm=cm,
        mallory=mallory,
        pm=pm,
        boss=boss,
        rich=rich,
        others=others,
        in_stage=in_stage,
        routed=routed,
        tickets=tickets,
        feeds=feeds,
        saved_replies=saved_replies,
        team=team,
        rule=rule,
        token=token,
    )


def _visitor(name: str, new_context, log_in, live_server, user=None) -> Visitor:
    context: BrowserContext = new_context()
    context.add_init_script(script=RECORD_CSP)
    if user is not None:
        log_in(context, user)
    return Visitor(name, context.new_page())


def _csv(visitor: Visitor, path: str) -> list[dict]:
    response = visitor.page.context.request.get(path)
    assert response.ok, f"{path}: HTTP {response.status}"
    return list(csv.DictReader(io.StringIO(response.text())))


def _as_manager(cm: Visitor, world: World) -> None:
    """Every page of a community manager, and what they do that shows text back."""
    rich, shipped, kept = world.rich, world.tickets["shipped"], world.tickets["kept"]
    conversation_page = f"/conversations/{rich.pk}/"
    cm.visit("/queue/", shows=(*SHORT_TEXTS, p(6), p(7), p(2), p(23), f"#{tag_name(2)}"))
    for stage, conversation in world.in_stage.items():
        cm.visit(f"/queue/?stage={stage}", shows=(conversation.text, p(6)))
    # Searches and filters, each with a conversation it must list. (PostgreSQL's text
    # search reads <script>…</script> as markup, not words: searching for p(1) or p(17)
    # finds nothing there, so those only show the search echoed back.)
    for query, listed in (
        ({"q": p(1)}, None),
        ({"q": p(17)}, None),
        ({"q": p(2)}, p(2)),
        ({"q": p(9)}, p(9)),
        ({"q": "routeme"}, world.routed.text),
        ({"tag": tag_name(2)}, p(1)),
        ({"tag": p(2)}, p(1)),
        ({"assignee": "mallory", "sort": "newest"}, p(1)),
        ({"follow_up": "yes", "state": ""}, p(38)[:100]),
        ({"state": "", "sort": "priority"}, p(1)),
    ):
        cm.visit(f"/queue/?{urlencode(query)}", shows=(p(6),))
        if listed is not None:
            cm.lists(f"/queue/?{urlencode(query)}", listed)
    cm.visit(f"/queue/?{urlencode({'assignee': p(6)})}", shows=(p(6),))
    # Filters that cannot be used are refused with a message that may quote them.
    for query in (
        {"language": p(5), "sort": p(1)},
        {"received_from": p(6), "received_to": p(1)},
    ):
        cm.visit(f"/queue/?{urlencode(query)}", shows=(p(6),), status=400)
    cm.visit(f"/queue/?{urlencode({'q': 'xss', 'tag': tag_name(2)})}", shows=(p(6),))

    cm.visit(
        conversation_page,
        shows=(
            p(36),  # the handle
            p(25),  # the name
            p(17),  # a reply
            p(7),  # the no-change reason
            p(31),  # a restart reason, a ticket title
            p(4),
            p(26),  # an evidence quote
            p(35),  # the product team's note
            p(9),  # template syntax stays as typed
            tag_name(24),
            p(1),  # the source
        ),
    )
    cm.visit(f"/conversations/{world.routed.pk}/", shows=(p(13), p(11), p(10)))
    for conversation in world.others[:4]:
        cm.visit(f"/conversations/{conversation.pk}/", shows=(conversation.text,))
    cm.visit(f"{conversation_page}?{urlencode({'ticket_q': p(19)})}", shows=(p(19),))
    cm.visit(f"{conversation_page}?{urlencode({'ticket_q': p(6)})}", shows=(p(6),))

    # htmx swaps the server's answer into the page as you type; the picker moves a saved
    # reply into the reply box as text.
    page = cm.page
    page.goto(conversation_page)
    page.locator("#link-ticket summary").click()
    page.locator("#id_ticket_q").fill("xss")
    page.locator("#ticket-results").get_by_text(p(19)).first.wait_for()
    cm.check("ticket search (htmx)", shows=(p(19),))
    page.locator("#id_ticket_q").fill(p(37))
    page.locator("#ticket-results").get_by_text(p(37)).first.wait_for()
    cm.check("ticket search (htmx), no match", shows=(p(37),))
    page.locator("[data-saved-replies-picker] summary").click()
    page.locator(
        f"#saved-reply-option-{world.saved_replies[0].pk} [data-saved-reply-insert]"
    ).click()
    assert page.locator("#id_reply_text").input_value() == f"Hi {p(25)}, {p(17)}"
    cm.check("saved reply inserted", shows=(p(17),))
    # A refused reply comes back with what was typed, in its form.
    page.locator("#id_reply_url").fill(HOSTILE_URLS[0])
    page.get_by_role("button", name="Log reply").click()
    cm.check("reply refused (javascript: URL)", shows=(p(17), HOSTILE_URLS[0]))
    page.locator("#id_reply_url").fill("")
    page.get_by_role("button", name="Log reply").click()
    page.wait_for_url(f"**{conversation_page}")
    cm.check("reply logged", shows=(f"Hi {p(25)}, {p(17)}",))
    page.locator("#id_note_text").fill(f"{p(26)} {p(13)}")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"**{conversation_page}")
    cm.check("note added", shows=(p(6),))
    # htmx replaces "who else is here" with the server's answer.
    with page.expect_response(f"**/conversations/{rich.pk}/presence/"):
        page.evaluate("document.body.dispatchEvent(new CustomEvent('engage:presence'))")
    page.locator("#presence").get_by_text(p(6)).wait_for()
    cm.check("presence (htmx)", shows=(p(6),))

    cm.visit("/feedback/", shows=(p(31), p(19), p(6), p(9), p(17)))
    cm.visit(f"/feedback/?{urlencode({'q': p(31)})}", shows=(p(31),))
    cm.visit(f"/feedback/?{urlencode({'product_area': p(9)})}", shows=(p(19),))
    cm.visit("/feedback/?status=shipped", shows=(p(31),))
    cm.visit(f"/feedback/{shipped.pk}/", shows=(p(31), p(17), p(14), p(26), p(35), p(36)))
    cm.visit(f"/feedback/{kept.pk}/", shows=(p(19), p(2), p(20), p(3), p(24)))
    cm.visit("/dashboard/", shows=(p(4), p(31), p(6), p(2)))
    cm.visit(f"/dashboard/?{urlencode({'assignee': 'mallory'})}", shows=(p(6),))
    cm.visit(f"/dashboard/?{urlencode({'assignee': p(1)})}", shows=(p(6),), status=400)
    cm.visit("/sources/", shows=(p(33), p(27), p(26), p(17), p(2), p(1), p(10), p(19)))
    cm.visit("/sources/?removed=1", shows=(p(21),))
    cm.visit("/targets/", shows=(p(8), p(30)))
    cm.visit("/saved-replies/", shows=(p(18), p(17), p(8), p(1), p(37), p(2)))
    cm.visit(f"/saved-replies/{world.saved_replies[0].pk}/edit/")
    cm.page.get_by_role("button", name="Save changes").click()
    cm.page.wait_for_url("**/saved-replies/**")
    cm.check("saved reply saved", shows=(f"Saved reply “{p(18)}” updated.",))
    cm.visit("/queue/")
    cm.page.locator(".save-view summary").click()
    cm.page.locator("[data-save-view-form] input[name=name]").fill(p(30))
    cm.page.locator("[data-save-view-form] button[type=submit]").click()
    cm.page.wait_for_url("**/queue/**")
    cm.check("view saved", shows=(f"View “{p(30)}” saved.", p(6)))
    for reply in world.saved_replies:
        cm.visit(f"/saved-replies/{reply.pk}/edit/", shows=(reply.title, reply.text))
        cm.visit(f"/saved-replies/{reply.pk}/delete/", shows=(reply.title, reply.text))
    cm.visit(f"/no-such-page/{quote(p(1))}/", shows_any=False, status=404)

    # Notifications are on every page; the header shows the person's own name.
    notices = cm.visit("/saved-replies/", shows=(p(11), p(31), p(35)))
    assert "mentioned you" in notices
    header = cm.page.locator(".site-header").inner_text()
    assert p(2) in header
    assert p(23) in header

    # Bulk actions: a tag that cannot be, quoted back; a restart whose outcome is listed.
    cm.visit("/queue/", shows=(p(6),))
    cm.page.locator("[data-select-all]").check()
    cm.page.locator(".bulk-more summary").click()
    cm.page.locator("#bulk input[name=tags]").fill(p(25))
    cm.page.locator("#bulk button[value=tag_add]").click()
    cm.page.wait_for_load_state()
    cm.check("bulk tag refused", shows=(p(25), "<img-src=x-onerror=alert('xss-25')>” is not"))
    cm.page.locator("#bulk input[name=tags]").fill("")
    cm.page.locator("#bulk input[name=reason]").fill(p(10))
    cm.page.locator("#bulk button[value=restart]").click()
    cm.page.locator("[data-bulk-outcome]").wait_for()
    cm.check("bulk restart", shows=(p(6),))

    # Spreadsheets show a formula-like cell as text: it starts with an apostrophe.
    tickets_csv = _csv(cm, "/dashboard/export/top-tickets.csv")
    assert "'" + p(31) in [row["title"] for row in tickets_csv]
    restarts_csv = _csv(cm, "/dashboard/export/restarts.csv")
    assert "'" + p(31) in [row["reason"] for row in restarts_csv]
    assert p(4) in [row["reason"] for row in restarts_csv]
    board_csv = _csv(cm, "/feedback/export.csv")
    assert any(value == "'" + p(31) for row in board_csv for value in row.values())


def _as_product(pm: Visitor, world: World) -> None:
    """The product team's pages: the board and tickets (which they edit), and the rest."""
    rich, shipped, kept = world.rich, world.tickets["shipped"], world.tickets["kept"]
    conversation_page = f"/conversations/{rich.pk}/"
    pm.visit("/feedback/", shows=(p(31), p(19), p(17), p(18)))
    pm.visit(f"/feedback/{shipped.pk}/", shows=(p(31), p(17), p(26), p(6)))
    pm.visit(f"/feedback/{kept.pk}/", shows=(p(19), p(2), p(20), p(24)))
    pm.page.get_by_text("Edit the title, problem and product area").click()
    pm.page.locator("#id_edit_product_area").fill(p(25))
    pm.page.get_by_role("button", name="Save", exact=True).click()
    pm.page.wait_for_url(f"**/feedback/{kept.pk}/")
    pm.check("ticket edited", shows=(p(19), p(25)))
    pm.visit(conversation_page, shows=(p(36), p(17), p(7)))
    pm.visit("/queue/", shows=SHORT_TEXTS)
    pm.visit("/dashboard/", shows=(p(31),))
    pm.visit("/saved-replies/", shows=(p(18),))
    # Only community managers change saved replies: the refusal page.
    pm.visit(f"/saved-replies/{world.saved_replies[0].pk}/edit/", shows_any=False, status=403)


def _as_staff(boss: Visitor, world: World) -> None:
    """Staff: the sources they manage, the targets, and the admin."""
    rich, shipped = world.rich, world.tickets["shipped"]
    conversation_page = f"/conversations/{rich.pk}/"
    boss.visit("/sources/", shows=(p(33), p(27)))
    # Its address is no URL the form accepts: saving shows the form again, with the error.
    boss.visit(f"/sources/{world.feeds[0].pk}/edit/", shows=(p(33), p(2)))
    boss.page.get_by_role("button", name="Save changes").click()
    boss.check("source refused", shows=(p(33), p(2)))
    boss.visit(f"/sources/{world.feeds[1].pk}/edit/", shows=(p(27), p(9)))
    boss.page.locator("#id_keywords").fill(p(24))
    boss.page.get_by_role("button", name="Save changes").click()
    boss.page.wait_for_url("**/sources/#source-*")
    boss.check("source saved", shows=(f"Source “{p(27)}” saved.", p(24)))
    boss.visit(f"/sources/{world.feeds[2].pk}/edit/", shows=(p(21),))
    boss.visit("/targets/", shows=(p(8), p(30)))
    boss.visit(conversation_page, shows=(p(36), p(17)))
    boss.visit("/admin/", shows_any=False)
    admin_pages = {
        "conversation": (world.others[0].pk, (p(1), f"1 {p(1)}")),
        "contact": (rich.contact_id, (p(36), p(25))),
        "message": (rich.messages.get(text=p(32)).pk, (p(32),)),
        "note": (rich.notes.order_by("pk").first().pk, (p(1),)),
        "event": (rich.events.filter(reason=p(31)).get().pk, (p(31),)),
        "feedbackticket": (shipped.pk, (p(31),)),
        "feedbacklink": (shipped.links.get().pk, (p(26),)),
        "notification": (Notification.objects.filter(user=world.cm).first().pk, ()),
        "source": (world.feeds[0].pk, (p(33),)),
        "tag": (Tag.objects.get(name=tag_name(2)).pk, (tag_name(2),)),
        "team": (world.team.pk, (p(24),)),
        "routingrule": (world.rule.pk, (p(13),)),
        "apitoken": (world.token.pk, (p(2),)),
    }
    for model, (pk, shows) in admin_pages.items():
        boss.visit(f"/admin/engage/{model}/")
        # Tag names are stored lower case, with dashes: not as the corpus wrote them.
        boss.visit(f"/admin/engage/{model}/{pk}/change/", shows=shows, shows_any=model != "tag")
    # Its latest events, with their reasons, are listed on its admin page.
    boss.visit(f"/admin/engage/conversation/{rich.pk}/change/", shows=(p(4),))
    boss.visit(f"/admin/engage/conversation/?{urlencode({'q': p(2)})}", shows=(p(2),))
    tag = Tag.objects.get(name=tag_name(2))
    boss.visit(f"/admin/engage/tag/{tag.pk}/delete/", shows=(tag.name,), shows_any=False)
    boss.visit(f"/admin/engage/conversation/{rich.pk}/history/", shows_any=False)
    boss.visit("/admin/auth/user/", shows=(p(2), p(6)))
    boss.visit(f"/admin/auth/user/{world.cm.pk}/change/", shows=(p(2), p(23)))


def _as_guest(guest: Visitor, world: World) -> None:
    """Logged out: the login page with a payload in ?next=."""
    for next_url in (p(6), p(1), p(8), p(17), HOSTILE_URLS[0]):
        guest.visit(f"/accounts/login/?{urlencode({'next': next_url})}", shows_any=False)
    # A refused login shows the form again, with the name that was typed.
    guest.page.locator("input[name=username]").fill(p(6))
    guest.page.locator("input[name=password]").fill(p(1))
    guest.page.locator("main button[type=submit]").click()
    guest.page.wait_for_load_state()
    guest.check("login refused", shows=(p(6),))


def test_hostile_text_in_every_field_renders_inert_on_every_page(new_context, log_in, live_server):
    world = build_world()
    assert Notification.objects.filter(user=world.cm, read_at__isnull=True).count() >= 2
    assert len(PAYLOADS) >= 30

    problems = []
    for name, walk, user in (
        ("manager", _as_manager, world.cm),
        ("product", _as_product, world.pm),
        ("staff", _as_staff, world.boss),
        ("guest", _as_guest, None),
    ):
        visitor = _visitor(name, new_context, log_in, live_server, user)
        try:
            walk(visitor, world)
        except Exception as error:  # noqa: BLE001 - reported with every page's problems below
            # Injected markup can break a page so that a click finds nothing: still report
            # what the pages showed so far, and walk on as the next person.
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            visitor.problems.append(f"{name}: the walk stopped at {visitor.page.url}: {first_line}")
        problems += visitor.problems
        visitor.page.context.close()
    assert not problems, "\n".join(["payloads that were not inert:", *problems])


def test_logging_in_never_follows_a_hostile_next(new_context, log_in, live_server):
    """After logging in, a javascript:, attribute-breaking or foreign ?next= is not
    followed: the person stays on this site, and nothing runs on the way."""
    factories.user("cm", role=Role.COMMUNITY_MANAGER, first_name=p(2))
    for next_url in (HOSTILE_URLS[0], HOSTILE_URLS[2], p(6), "//evil.example/"):
        guest = _visitor("guest", new_context, log_in, live_server)
        guest.visit(f"/accounts/login/?{urlencode({'next': next_url})}", shows_any=False)
        assert "javascript" not in guest.page.locator("main input[name=next]").input_value()
        guest.page.locator("input[name=username]").fill("cm")
        guest.page.locator("input[name=password]").fill("pw-cm")
        guest.page.locator("main button[type=submit]").click()
        guest.page.wait_for_load_state()
        assert guest.page.url.startswith(live_server.url + "/"), guest.page.url
        guest.check(f"after logging in with next={next_url}", shows_any=False)
        assert not guest.problems, "\n".join(guest.problems)
        guest.page.context.close()
