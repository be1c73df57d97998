"""The triage queue: filters, sorts and keyset pages, stage counts, bulk actions, saved views,
keyboard shortcuts and the page's query count."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from engage import queries
from engage.choices import EventKind, Priority, Stage, State
from engage.errors import InvalidInput
from engage.models import Conversation, Event, SavedView
from engage.queries import QueueFilter
from engage.services import bulk, saved_views
from engage.services import conversations as services
from engage.services.merge import merge
from engage.services.tags import change_tags
from tests import factories

QUEUE = "/queue/"


def fresh(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def listed(client, query: str = "") -> list[int]:
    response = client.get(QUEUE + query)
    assert response.status_code == 200, response.content[:500]
    return [c.pk for c in response.context["page"].items]


def ids(filters: QueueFilter, user) -> set[int]:
    return {c.pk for c in queries.queue_page(filters, user=user, limit=200).items}


def answered(conversation, actor):
    services.log_reply(conversation.pk, actor=actor, text="Thanks, we are on it.")
    return fresh(conversation)


def enriched(conversation, **fields):
    """Language and sentiment are written by enrichment, which has no service yet."""
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    return fresh(conversation)


# Filters -----------------------------------------------------------------------------------


def test_without_a_state_the_queue_shows_open_ones_and_state_empty_shows_all(client, manager):
    open_one = factories.conversation()
    snoozed = factories.conversation()
    closed = factories.conversation()
    services.set_state(
        snoozed.pk, "snoozed", actor=manager, snoozed_until=timezone.now() + timedelta(days=1)
    )
    services.set_state(closed.pk, "closed", actor=manager)
    client.force_login(manager)

    assert listed(client) == [open_one.pk]
    assert listed(client, "?stage=listen") == [open_one.pk]
    assert set(listed(client, "?state=")) == {open_one.pk, snoozed.pk, closed.pk}
    assert listed(client, "?state=snoozed") == [snoozed.pk]
    assert listed(client, "?state=closed") == [closed.pk]
    body = client.get(QUEUE).content.decode()
    assert '<option value="open" selected>Open</option>' in body


def test_each_filter_and_their_combination(manager, other_manager):
    mine = factories.conversation(text="The battery drains fast", channel="facebook")
    theirs = factories.conversation(text="Battery is great", priority="urgent")
    nobodys = factories.conversation(text="Screen flickers", priority="high")
    flagged = factories.conversation(text="Any news on the battery fix?")
    services.assign(mine.pk, manager, actor=manager)
    services.advance(mine.pk, actor=manager)
    services.assign(theirs.pk, other_manager, actor=other_manager)
    services.assign(flagged.pk, manager, actor=manager)
    Conversation.objects.filter(pk=flagged.pk).update(needs_follow_up=True)
    enriched(mine, language="it", sentiment="negative")
    enriched(theirs, language="en", sentiment="positive")
    enriched(nobodys, language="it", sentiment="negative")
    change_tags(mine.pk, actor=manager, add=["battery", "billing"])
    change_tags(nobodys.pk, actor=manager, add=["screen"])
    everyone = {mine.pk, theirs.pk, nobodys.pk, flagged.pk}

    def find(**fields) -> set[int]:
        return ids(QueueFilter(**fields), manager)

    assert find() == everyone
    assert find(stage="interact") == {mine.pk}
    assert find(stage="listen") == everyone - {mine.pk}
    assert find(state="open") == everyone
    assert find(assignee="me") == {mine.pk, flagged.pk}
    assert find(assignee="none") == {nobodys.pk}
    assert find(assignee="other") == {theirs.pk}
    assert find(channel="facebook") == {mine.pk}
    assert find(priority="urgent") == {theirs.pk}
    assert find(language="it") == {mine.pk, nobodys.pk}
    assert find(language="IT") == {mine.pk, nobodys.pk}
    assert find(sentiment="negative") == {mine.pk, nobodys.pk}
    assert find(tag="battery") == {mine.pk}
    assert find(tag="#Battery") == {mine.pk}
    assert find(tag="nothing-like-it") == set()
    assert find(follow_up=True) == {flagged.pk}
    assert find(follow_up=False) == everyone - {flagged.pk}
    assert find(q="battery") == {mine.pk, theirs.pk, flagged.pk}
    # Combined: every filter narrows.
    assert find(q="battery", assignee="me") == {mine.pk, flagged.pk}
    assert find(q="battery", assignee="me", language="it") == {mine.pk}
    assert find(language="it", sentiment="negative", stage="listen") == {nobodys.pk}
    assert find(language="it", tag="screen", priority="high", assignee="none") == {nobodys.pk}
    assert find(language="it", tag="screen", priority="urgent") == set()


def test_overdue_means_unanswered_past_due_and_not_closed(manager):
    now = timezone.now()
    late = factories.conversation(created_at=now - timedelta(days=3))
    late_answered = answered(factories.conversation(created_at=now - timedelta(days=3)), manager)
    late_closed = factories.conversation(created_at=now - timedelta(days=3))
    services.set_state(late_closed.pk, "closed", actor=manager)
    late_snoozed = factories.conversation(created_at=now - timedelta(days=3))
    services.set_state(
        late_snoozed.pk, "snoozed", actor=manager, snoozed_until=now + timedelta(hours=2)
    )
    not_yet = factories.conversation(created_at=now - timedelta(hours=1))

    assert ids(QueueFilter(overdue=True), manager) == {late.pk, late_snoozed.pk}
    assert ids(QueueFilter(overdue=True, state="open"), manager) == {late.pk}
    assert late_answered.pk not in ids(QueueFilter(overdue=True, state=""), manager)
    assert not_yet.pk in ids(QueueFilter(), manager)


def test_overdue_rows_stand_out_and_the_filter_is_in_the_url(client, manager):
    late = factories.conversation(created_at=timezone.now() - timedelta(days=3))
    factories.conversation(created_at=timezone.now())
    client.force_login(manager)

    assert listed(client, "?overdue=on") == [late.pk]
    body = client.get(QUEUE).content.decode()
    assert body.count("data-overdue") == 1
    assert "overdue by 2\xa0days" in body


def test_merged_conversations_show_only_among_the_closed(client, manager):
    kept = factories.conversation(text="Kept one")
    duplicate = factories.conversation(text="Same again")
    merge(duplicate.pk, kept.pk, actor=manager)
    client.force_login(manager)

    assert listed(client) == [kept.pk]
    assert listed(client, "?state=") == [kept.pk]
    assert listed(client, "?state=closed") == [duplicate.pk]
    body = client.get(QUEUE + "?state=closed").content.decode()
    assert f"merged into #{kept.pk}" in body
    assert f'data-merged-into="{kept.pk}"' in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?sentiment=furious", "“furious” is not a sentiment."),
        ("?language=" + "x" * 15, "is not a language code."),
        ("?tag=" + "t" * 70, "is not a valid tag"),
        ("?cursor=WzEsMl0", "This cursor is not valid"),
    ],
)
def test_bad_new_filters_are_a_clear_400(client, manager, conversation, query, message):
    client.force_login(manager)

    response = client.get(QUEUE + query)

    assert response.status_code == 400
    assert message in response.content.decode()


# Sorts and keyset pages --------------------------------------------------------------------


def walk(filters: QueueFilter, user, limit: int) -> list[int]:
    """Follow the cursors from the first page to the last; return the ids in order."""
    seen, cursor = [], None
    for _page in range(200):
        page = queries.queue_page(filters, user=user, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        seen += [c.pk for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


def expected_order(sort: str) -> list[int]:
    """The documented order of each sort, computed in Python from the rows themselves."""
    rows = list(Conversation.objects.filter(state__in=["open", "snoozed", "closed"]))

    def waiting(c):
        return c.first_response_at is None and c.state != State.CLOSED

    keys = {
        "due": lambda c: (not waiting(c), c.first_response_due_at, c.pk),
        "priority": lambda c: (-c.priority, c.first_response_due_at, c.pk),
        "oldest": lambda c: (c.received_at, c.pk),
    }
    if sort == "newest":
        return [c.pk for c in sorted(rows, key=lambda c: (c.received_at, c.pk), reverse=True)]
    return [c.pk for c in sorted(rows, key=keys[sort])]


@pytest.fixture
def mixed_queue(manager):
    """Twelve conversations sharing only three distinct times (ties everywhere), some
    answered, one closed, with every priority."""
    base = timezone.now().replace(microsecond=0) - timedelta(hours=30)
    priorities = ["low", "high", "normal", "urgent"]
    made = []
    for n in range(12):
        made.append(
            factories.conversation(
                created_at=base + timedelta(hours=n % 3), priority=priorities[n % 4]
            )
        )
    for conversation in made[::3]:
        answered(conversation, manager)
    services.set_state(made[4].pk, "closed", actor=manager)
    return made


@pytest.mark.parametrize("rare_matches", [2, 500], ids=["walked", "read-by-id"])
def test_a_search_pages_through_exactly_its_matches_in_order(manager, monkeypatch, rare_matches):
    # Few matches are read by id from the full-text index, many by walking the sort's index:
    # either way every page holds the right rows in due order.
    monkeypatch.setattr(queries, "RARE_MATCHES", rare_matches)
    now = timezone.now()
    matching = []
    for n in range(12):
        conversation = factories.conversation(
            text=f"Il serbatoio perde acqua {n}" if n % 3 == 0 else f"Tutto bene {n}"
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            first_response_due_at=now + timedelta(hours=12 - n)
        )
        if n % 3 == 0:
            matching.append(conversation.pk)

    assert walk(QueueFilter(q="serbatoio"), manager, 2) == list(reversed(matching))
    assert walk(QueueFilter(q="serbatoio", sort="newest"), manager, 3) == sorted(
        matching, key=lambda pk: Conversation.objects.get(pk=pk).received_at, reverse=True
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the full-text index and its planner estimate"
)
@pytest.mark.parametrize(("estimate", "probed"), [(0, True), (queries.COMMON_MATCHES, False)])
def test_a_search_the_planner_expects_common_is_walked_without_the_probe(
    manager, monkeypatch, estimate, probed
):
    monkeypatch.setattr(queries, "_estimated_rows", lambda queryset: estimate)
    matching = [factories.conversation(text=f"La caldaia fa rumore {n}").pk for n in range(5)]
    factories.conversation(text="Nessun problema")

    with CaptureQueriesContext(connection) as captured:
        found = walk(QueueFilter(q="caldaia"), manager, 50)

    assert sorted(found) == sorted(matching)
    probe = f"LIMIT {queries.RARE_MATCHES + 1}"
    assert any(probe in query["sql"] for query in captured.captured_queries) is probed


TRICKY_TEXTS = [
    "La macchina fa RUMORE quando macina",
    "rumore-strano dal gruppo, acqua ovunque",
    "Nessun problema: caffè ottimo",
    "http://shop.example/rumore?acqua=1 non funziona",
    "Perde acqua... e fa rumore!!",
    "Il display 3 si spegne, errore E5",
    "foo_bar e a_b nel log",
    "xrumorex non è una parola",
    "Acqua calda, acqua fredda",
]
TRICKY_SEARCHES = [
    "rumore",
    "RUMORE acqua",
    "acqua rumore!",
    "acqua - rumore",
    "acqua -rumore",
    "-acqua rumore",
    "acqua or rumore",
    "acqua OR rumore",
    '"fa rumore"',
    '-"fa rumore" acqua',
    "a_b",
    "e5 display",
    "caffè ottimo",
    "rumore, acqua",
    "strano",
    "xrumorex",
    "acqua !rumore",
]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's full-text search")
@pytest.mark.parametrize("q", TRICKY_SEARCHES)
def test_the_cheap_test_before_the_full_text_search_keeps_the_same_matches(db, q):
    for text in TRICKY_TEXTS:
        factories.conversation(text=text)
    searched = queries.queue_matches(QueueFilter(q=q, state=""), user=None)

    found = set(searched.values_list("pk", flat=True))
    with_words = set(queries._containing(searched, q).values_list("pk", flat=True))

    assert with_words == found


def test_required_words_are_the_plain_words_of_a_plain_search():
    assert queries.required_words("Rumore acqua!") == ["rumore"]
    assert queries.required_words("caffè E5 e5 a_b") == ["e5"]
    for optional in ("acqua or rumore", "acqua -rumore", "acqua - rumore", '"fa rumore"'):
        assert queries.required_words(optional) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's EXPLAIN")
def test_the_planner_estimate_follows_the_table(manager):
    for n in range(40):
        factories.conversation(text=f"Caldaia {n}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE engage_conversation")

    assert 20 <= queries._estimated_rows(Conversation.objects.all()) <= 80


@pytest.mark.parametrize("sort", ["due", "newest", "oldest", "priority"])
@pytest.mark.parametrize("limit", [1, 2, 5, 50])
def test_keyset_pages_follow_each_sort_over_ties_without_skips_or_repeats(
    manager, mixed_queue, sort, limit
):
    paged = walk(QueueFilter(state="", sort=sort), manager, limit)

    assert paged == expected_order(sort)
    assert len(paged) == len(set(paged)) == 12


def test_due_sort_puts_the_waiting_before_the_answered_and_closed(manager):
    now = timezone.now()
    answered_long_ago = answered(
        factories.conversation(created_at=now - timedelta(days=9)), manager
    )
    closed_long_ago = factories.conversation(created_at=now - timedelta(days=8))
    services.set_state(closed_long_ago.pk, "closed", actor=manager)
    waiting_late = factories.conversation(created_at=now - timedelta(days=2))
    waiting_fresh = factories.conversation(created_at=now)

    order = walk(QueueFilter(state="", sort="due"), manager, 2)

    assert order == [waiting_late.pk, waiting_fresh.pk, answered_long_ago.pk, closed_long_ago.pk]


def test_priority_sort_is_urgent_first_then_by_due_time(manager):
    now = timezone.now()
    low = factories.conversation(priority="low", created_at=now - timedelta(days=5))
    urgent_later = factories.conversation(priority="urgent", created_at=now - timedelta(hours=1))
    urgent_sooner = factories.conversation(priority="urgent", created_at=now - timedelta(hours=3))
    high = factories.conversation(priority="high")

    order = walk(QueueFilter(sort="priority"), manager, 3)

    assert order == [urgent_sooner.pk, urgent_later.pk, high.pk, low.pk]


def test_a_cursor_of_one_sort_cannot_be_forged_past_the_checks(manager, conversation):
    with pytest.raises(InvalidInput):
        queries.queue_page(
            QueueFilter(), user=manager, cursor=queries.encode_cursor(99, timezone.now(), 1)
        )
    with pytest.raises(InvalidInput):
        queries.queue_page(QueueFilter(sort="sideways"), user=manager)


def test_the_page_links_keep_the_filters(client, manager, settings):
    settings.ENGAGE_PAGE_SIZE = 2
    for _ in range(5):
        factories.conversation()
    client.force_login(manager)

    body = client.get(QUEUE + "?language=&sort=newest").content.decode()

    next_href = html.unescape(re.search(r'<a href="([^"]*)" rel="next">', body).group(1))
    assert next_href.startswith("/queue/?language=&sort=newest&cursor=")
    tabs = re.findall(r'<a href="([^"]*)" data-stage-tab="(\w+)"', body)
    assert [(html.unescape(href), name) for href, name in tabs] == [
        ("/queue/?language=&sort=newest", "all"),
        ("/queue/?language=&sort=newest&stage=listen", "listen"),
        ("/queue/?language=&sort=newest&stage=interact", "interact"),
        ("/queue/?language=&sort=newest&stage=react", "react"),
        ("/queue/?language=&sort=newest&stage=sell", "sell"),
    ]


# Stage counts ------------------------------------------------------------------------------


def test_stage_counts_follow_the_filter_without_its_stage(manager):
    for _ in range(3):
        factories.conversation(channel="email")
    moved = factories.conversation(channel="email")
    services.assign(moved.pk, manager, actor=manager)
    services.advance(moved.pk, actor=manager)
    factories.conversation(channel="forum")

    counts = queries.stage_counts(QueueFilter(channel="email", stage="listen"), user=manager)

    assert [(c.stage, c.count, c.capped) for c in counts] == [
        ("", 4, False),
        ("listen", 3, False),
        ("interact", 1, False),
        ("react", 0, False),
        ("sell", 0, False),
    ]


def test_stage_counts_stop_at_the_cap_and_say_so(client, manager, settings):
    settings.ENGAGE_STAGE_COUNT_CAP = 2
    for _ in range(3):
        factories.conversation()
    moved = factories.conversation()
    services.assign(moved.pk, manager, actor=manager)
    services.advance(moved.pk, actor=manager)
    client.force_login(manager)

    counts = queries.stage_counts(QueueFilter(), user=manager)
    page = client.get(QUEUE).content.decode()
    # The page shows its rows at once and loads the counts after (htmx): from here.
    loaded = re.search(r'hx-get="([^"]*)" hx-trigger="load"', page)
    assert loaded
    assert "data-stage-count" not in page
    body = client.get(html.unescape(loaded.group(1))).content.decode()

    assert [(c.stage, c.count, c.capped) for c in counts] == [
        ("", 2, True),
        ("listen", 2, True),
        ("interact", 1, False),
        ("react", 0, False),
        ("sell", 0, False),
    ]
    assert 'data-stage-count="2+">2+</span>' in body
    assert 'data-stage-count="1">1</span>' in body


# Bulk actions ------------------------------------------------------------------------------


def post_bulk(client, action: str, rows, **fields):
    data = {"action": action, "ids": [c.pk for c in rows], "back": "stage=listen", **fields}
    return client.post(reverse("queue_bulk"), data)


def test_bulk_advance_reports_each_row_and_leaves_refused_rows_untouched(client, manager):
    ready = [factories.conversation() for _ in range(2)]
    for conversation in ready:
        services.assign(conversation.pk, manager, actor=manager)
    unassigned = factories.conversation()
    before = fresh(unassigned)
    client.force_login(manager)

    response = post_bulk(client, "advance", [*ready, unassigned])

    assert response.status_code == 303
    assert response["Location"] == "/queue/?stage=listen"
    assert [fresh(c).stage for c in ready] == [Stage.INTERACT, Stage.INTERACT]
    after = fresh(unassigned)
    assert (after.stage, after.version) == (before.stage, before.version)
    assert not Event.objects.filter(conversation=unassigned, kind=EventKind.STAGE_CHANGED).exists()

    body = client.get(response["Location"]).content.decode()
    assert "Advance: 2 done, 1 refused" in body
    assert f"#{ready[0].pk}</a> moved to interact" in body
    assert (
        f"#{unassigned.pk}</a>: Assign someone before moving to interact: "
        "this conversation has no assignee." in body
    )
    assert body.index(f'data-conversation-id="{unassigned.pk}"') < body.index(
        f'data-conversation-id="{ready[0].pk}"'
    ), "refused rows come first"
    # The outcome is shown once.
    assert "data-bulk-outcome" not in client.get(QUEUE).content.decode()


def test_bulk_outcomes_from_the_service(manager, other_manager):
    first, second = factories.conversation(), factories.conversation()
    services.set_state(second.pk, "closed", actor=manager)

    outcomes = bulk.apply([second.pk, first.pk, first.pk, 999999], bulk.advance(), actor=manager)

    assert [(o.conversation_id, o.ok) for o in outcomes] == [
        (first.pk, False),
        (second.pk, False),
        (999999, False),
    ]
    assert "Assign someone" in outcomes[0].message
    assert "closed: reopen it" in outcomes[1].message
    assert "does not exist" in outcomes[2].message

    outcomes = bulk.apply([first.pk, second.pk], bulk.assign(other_manager), actor=manager)
    assert [(o.ok, o.message) for o in outcomes] == [
        (True, "assigned to other"),
        (True, "assigned to other"),
    ]
    assert fresh(first).assignee == other_manager


def test_bulk_assign_unassign_priority_tags_snooze_close_reopen(client, manager, other_manager):
    rows = [factories.conversation() for _ in range(3)]
    client.force_login(manager)

    def done(action, **fields):
        response = post_bulk(client, action, rows, **fields)
        assert response.status_code == 303, response.content[:800]
        outcome = client.get(QUEUE).context["outcome"]
        assert (outcome["done"], outcome["refused"]) == (3, 0), outcome
        return [fresh(c) for c in rows]

    assert {c.assignee for c in done("assign_me")} == {manager}
    assert {c.assignee for c in done("assign", assignee="other")} == {other_manager}
    assert {c.assignee for c in done("unassign")} == {None}
    assert {c.priority for c in done("priority", priority="urgent")} == {Priority.URGENT}
    done("tag_add", tags="Billing, late delivery")
    assert {tuple(c.tags.values_list("name", flat=True)) for c in rows} == {
        ("billing", "late-delivery")
    }
    done("tag_remove", tags="billing")
    assert {tuple(c.tags.values_list("name", flat=True)) for c in rows} == {("late-delivery",)}
    until = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert {c.state for c in done("snooze", snoozed_until=until)} == {State.SNOOZED}
    assert {c.state for c in done("close")} == {State.CLOSED}
    assert {c.state for c in done("reopen")} == {State.OPEN}


def test_bulk_restart_needs_a_reason_and_changes_nothing_without_one(client, manager):
    rows = [factories.conversation() for _ in range(2)]
    for conversation in rows:
        services.assign(conversation.pk, manager, actor=manager)
        services.advance(conversation.pk, actor=manager)
    versions = [fresh(c).version for c in rows]
    client.force_login(manager)

    refused = post_bulk(client, "restart", rows, reason="  ", back="")

    assert refused.status_code == 422
    assert "a reason is required" in refused.content.decode()
    assert [fresh(c).version for c in rows] == versions
    body = refused.content.decode()
    assert all(f'value="{c.pk}" form="bulk" data-row-select' in body for c in rows)
    assert body.count(" checked>") == 2
    with pytest.raises(InvalidInput):
        bulk.restart("")

    response = post_bulk(client, "restart", rows, reason="They were unhappy")
    assert response.status_code == 303
    assert {(fresh(c).stage, fresh(c).cycle) for c in rows} == {(Stage.LISTEN, 2)}


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("assign", {}, "Choose the community manager to assign."),
        ("priority", {}, "Choose the priority."),
        ("tag_add", {"tags": " "}, "Name the tags to add or remove."),
        ("snooze", {}, "Say until when to snooze."),
        ("snooze", {"snoozed_until": "2001-01-01T10:00"}, "Snooze until a time in the future."),
        ("assign", {"assignee": "product"}, "Select a valid choice."),
        ("advance", {"ids": ["x"]}, "These are not conversation numbers."),
        ("advance", {"ids": []}, "Select at least one conversation."),
        ("dance", {}, "Select a valid choice."),
    ],
)
def test_bulk_input_errors_re_show_the_queue_and_change_nothing(
    client, manager, product, action, fields, message
):
    conversation = factories.conversation()
    client.force_login(manager)
    data = {"action": action, "ids": [conversation.pk], "back": "", **fields}

    response = client.post(reverse("queue_bulk"), data)

    assert response.status_code == 422
    assert message in html.unescape(response.content.decode())
    assert fresh(conversation).version == conversation.version


def test_bulk_is_capped(client, manager, settings):
    settings.ENGAGE_BULK_LIMIT = 2
    rows = [factories.conversation() for _ in range(3)]
    client.force_login(manager)

    response = post_bulk(client, "assign_me", rows)

    assert response.status_code == 422
    assert "Select at most 2 conversations at a time (you selected 3)." in response.content.decode()
    assert {fresh(c).assignee for c in rows} == {None}


CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')


def forms_of(body: str) -> str:
    """The filter form and the bulk bar as a person gets them, CSRF tokens left out."""
    filters = re.search(r"<form[^>]*data-queue-filters>.*?</form>", body, re.S).group(0)
    bulk_bar = re.search(r"<form[^>]*data-bulk-form.*?</form>", body, re.S).group(0)
    return CSRF_INPUT.sub("", filters + bulk_bar)


def test_the_filter_fields_and_bulk_bar_drawn_again_are_the_same(client, manager, settings):
    factories.conversation()
    client.force_login(manager)
    query = "?stage=listen&channel=twitter&q=product"

    settings.ENGAGE_FRAGMENT_SECONDS = 0  # drawn each time, never kept
    drawn = forms_of(client.get(QUEUE + query).content.decode())
    settings.ENGAGE_FRAGMENT_SECONDS = 600
    first, again = (forms_of(client.get(QUEUE + query).content.decode()) for _ in range(2))

    assert first == again == drawn
    assert '<option value="twitter" selected>' in drawn
    assert drawn.count('name="back"') == 1
    assert 'value="stage=listen&amp;channel=twitter&amp;q=product"' in drawn


def test_kept_fragments_follow_the_filters_the_people_and_the_language(client, manager):
    factories.conversation(channel="twitter")
    factories.conversation(channel="facebook")
    client.force_login(manager)
    client.get(QUEUE + "?channel=twitter")

    other = forms_of(client.get(QUEUE + "?channel=facebook").content.decode())
    assert '<option value="facebook" selected>' in other
    assert '<option value="twitter" selected>' not in other

    newcomer = factories.user("newcomer")
    newcomer.first_name = "Nadia"
    newcomer.save()
    assert ">Nadia</option>" in forms_of(client.get(QUEUE + "?channel=facebook").content.decode())

    italian = client.get(QUEUE + "?channel=facebook", headers={"accept-language": "it"})
    assert "Altre azioni" in forms_of(italian.content.decode())


def test_each_person_gets_their_own_csrf_token_with_a_kept_bulk_bar(manager, other_manager):
    conversation = factories.conversation()
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(manager)
    second.force_login(other_manager)
    first.get(QUEUE)  # draws and keeps the bulk bar

    body = second.get(QUEUE).content.decode()
    bulk_bar = re.search(r"<form[^>]*data-bulk-form.*?</form>", body, re.S).group(0)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', bulk_bar).group(1)
    response = second.post(
        reverse("queue_bulk"),
        {"csrfmiddlewaretoken": token, "action": "assign_me", "ids": conversation.pk, "back": ""},
    )

    assert response.status_code == 303
    assert fresh(conversation).assignee == other_manager


def test_a_refused_bulk_action_shows_its_errors_over_a_kept_bulk_bar(client, manager):
    conversation = factories.conversation()
    client.force_login(manager)
    client.get(QUEUE)  # the unbound bulk bar, kept

    response = post_bulk(client, "assign", [conversation], back="")

    body = html.unescape(response.content.decode())
    assert response.status_code == 422
    assert "Choose the community manager to assign." in forms_of(body)
    assert '<details class="bulk-more" open>' in body
    assert f'value="{conversation.pk}" form="bulk" data-row-select aria-label' in body


def test_the_focused_row_keys_post_one_row_to_the_bulk_action(client, manager):
    conversation = factories.conversation()
    client.force_login(manager)
    body = client.get(QUEUE).content.decode()

    form = re.search(r"<form[^>]*data-row-action-form>(.*?)</form>", body, re.S).group(1)
    assert 'name="ids" value="" data-row-action-id' in form
    assert 'value="assign_me" data-shortcut="a" data-shortcut-row' in form
    assert 'value="advance" data-shortcut="e" data-shortcut-row' in form

    response = client.post(
        reverse("queue_bulk"), {"action": "assign_me", "ids": conversation.pk, "back": ""}
    )
    assert response.status_code == 303
    assert response["Location"] == QUEUE
    assert fresh(conversation).assignee == manager


# Permissions -------------------------------------------------------------------------------


def test_product_team_reads_the_queue_without_controls_and_gets_403_on_bulk(
    client, product, manager
):
    conversation = factories.conversation()
    client.force_login(product)

    body = client.get(QUEUE).content.decode()

    assert conversation.text in body
    assert "data-bulk-form" not in body
    assert "data-row-select" not in body
    assert "data-row-action-form" not in body
    assert reverse("claim_next") not in body
    assert 'data-shortcut="c"' not in body
    response = post_bulk(client, "assign_me", [conversation])
    assert response.status_code == 403
    assert fresh(conversation).assignee is None
    with pytest.raises(Exception, match="Only community managers"):
        bulk.apply([conversation.pk], bulk.advance(), actor=product)


def test_bulk_and_saved_views_need_login_and_post(client, manager):
    for name, args in [("queue_bulk", []), ("queue_save_view", []), ("queue_delete_view", [1])]:
        response = client.post(reverse(name, args=args), {})
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login"))
    client.force_login(manager)
    for name, args in [("queue_bulk", []), ("queue_save_view", []), ("queue_delete_view", [1])]:
        assert client.get(reverse(name, args=args)).status_code == 405, name


# Saved views -------------------------------------------------------------------------------


def test_save_a_view_find_it_again_replace_it_and_delete_it(client, manager):
    client.force_login(manager)

    response = client.post(
        reverse("queue_save_view"),
        {"name": " My  overdue ", "query": "overdue=on&state=&cursor=abc&language=it"},
    )
    assert response.status_code == 303
    assert response["Location"] == "/queue/?overdue=on&state=&language=it"
    view = SavedView.objects.get(user=manager)
    assert (view.name, view.query) == ("My overdue", "overdue=on&state=&language=it")

    page = client.get(response["Location"])
    body = page.content.decode()
    assert "View “My overdue” saved." in html.unescape(body)
    assert (
        f'<li class="saved-view" data-saved-view="{view.pk}">\n'
        f'        <a href="/queue/?overdue=on&amp;state=&amp;language=it" aria-current="page">'
        "My overdue</a>"
    ) in body

    client.post(reverse("queue_save_view"), {"name": "My overdue", "query": "language=en"})
    assert list(SavedView.objects.values_list("name", "query")) == [("My overdue", "language=en")]

    response = client.post(reverse("queue_delete_view", args=[view.pk]), {"back": "language=en"})
    assert response.status_code == 303
    assert response["Location"] == "/queue/?language=en"
    assert not SavedView.objects.exists()


def test_saved_views_are_their_owners_only(client, manager, other_manager):
    theirs = saved_views.save_view(actor=other_manager, name="Theirs", query="stage=sell")
    client.force_login(manager)

    body = client.get(QUEUE).content.decode()
    assert "Theirs" not in body
    assert client.post(reverse("queue_delete_view", args=[theirs.pk])).status_code == 404
    with pytest.raises(InvalidInput):
        saved_views.delete_view(theirs.pk, actor=manager)
    assert SavedView.objects.filter(pk=theirs.pk).exists()


def test_a_view_needs_a_name(client, manager):
    client.force_login(manager)

    response = client.post(reverse("queue_save_view"), {"name": "  ", "query": "stage=react"})

    assert response.status_code == 422
    assert not SavedView.objects.exists()
    with pytest.raises(InvalidInput, match="Give the view a name."):
        saved_views.save_view(actor=manager, name=" ", query="")


def test_the_product_team_saves_views_too(client, product):
    client.force_login(product)

    response = client.post(reverse("queue_save_view"), {"name": "Feedback", "query": "tag=bug"})

    assert response.status_code == 303
    assert SavedView.objects.get(user=product).query == "tag=bug"


# Keyboard shortcuts ------------------------------------------------------------------------


def test_the_queue_declares_its_keys_and_the_help_dialog_lists_the_row_keys(client, manager):
    factories.conversation()
    client.force_login(manager)

    body = client.get(QUEUE).content.decode()

    for key, help_text in [
        ("c", "Claim the next conversation"),
        ("/", "Search"),
        ("a", "Assign the focused conversation to me"),
        ("e", "Advance the focused conversation"),
    ]:
        assert re.search(
            rf'data-shortcut="{re.escape(key)}"[^>]*data-shortcut-help="{help_text}"', body
        ), key
    dialog = re.search(r"<dialog id=\"shortcut-help\".*?</dialog>", body, re.S).group(0)
    assert "data-shortcut-dialog" in dialog
    assert "data-shortcut-list" in dialog
    for keys in [
        "<kbd>j</kbd> / <kbd>k</kbd>",
        "<kbd>o</kbd> / <kbd>Enter</kbd>",
        "<kbd>x</kbd>",
        "<kbd>r</kbd>",
        "<kbd>n</kbd>",
        "<kbd>?</kbd>",
        "<kbd>Esc</kbd>",
    ]:
        assert keys in dialog, keys
    assert "data-rows" in body
    assert body.count("data-row ") == 1
    assert 'data-href="/conversations/' in body
    assert body.count("<script") == body.count('<script src="/static/')
    assert "style=" not in body


def test_the_help_dialog_is_not_on_the_login_page(client, db):
    assert "shortcut-help" not in client.get(reverse("login")).content.decode()


# Query count -------------------------------------------------------------------------------


def _queue_queries(client, count: int, manager) -> int:
    for i in range(count):
        conversation = factories.conversation()
        if i % 2:
            services.assign(conversation.pk, manager, actor=manager)
        if i % 3:
            change_tags(conversation.pk, actor=manager, add=[f"tag-{i % 4}"])
    saved_views.save_view(actor=manager, name=f"View {count}", query=f"tag=tag-{count}")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(QUEUE)
    assert response.status_code == 200
    assert len(response.context["page"].items) == Conversation.objects.count()
    return len(captured)


def test_queue_query_count_does_not_grow_with_rows(client, manager):
    client.force_login(manager)
    small = _queue_queries(client, 5, manager)
    large = _queue_queries(client, 40, manager)

    assert small == large
    # Session, user, roles, community managers; the rows of each due segment (the waiting
    # ones, then the answered ones: the page reaches across), their tags (on PostgreSQL in
    # the rows' own query); saved views, tag suggestions; unread notifications; the
    # header's availability toggle. The stage counts come in their own request (below).
    assert small == (10 if connection.vendor == "postgresql" else 11)


def _count_queries(client, count: int, manager) -> int:
    for _ in range(count):
        factories.conversation()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("queue_counts"), {"channel": "twitter"})
    assert response.status_code == 200
    return len(captured)


def test_the_stage_counts_query_count_does_not_grow_with_rows(client, manager):
    client.force_login(manager)

    small, large = _count_queries(client, 3, manager), _count_queries(client, 30, manager)

    # The page's usual reads (session, user, roles, people for the filter form, the header's
    # notices and availability) and one query for the counts; on PostgreSQL the counts run
    # under a statement timeout in a savepoint.
    assert small == large == (10 if connection.vendor == "postgresql" else 6)
