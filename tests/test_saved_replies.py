"""Saved replies: the service's rules, the /saved-replies/ pages, the picker's ordering and
its placeholders, and the escaping of untrusted names."""

import html
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from engage import queries
from engage.choices import ReplyLanguage
from engage.errors import InvalidInput
from engage.models import Event, SavedReply
from engage.services import saved_replies as services
from engage.services.conversations import Author
from tests import factories

LIST = reverse("saved_replies")
CREATE = reverse("saved_reply_create")


def edit_url(reply) -> str:
    return reverse("saved_reply_edit", args=[reply.pk])


def delete_url(reply) -> str:
    return reverse("saved_reply_delete", args=[reply.pk])


def new(actor, title="Thanks", text="Thank you, {name}!", language="") -> SavedReply:
    return services.create_saved_reply(actor=actor, title=title, text=text, language=language)


def titles(replies) -> list[str]:
    return [reply.title for reply in replies]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def errors_of(response) -> dict:
    return {
        field: [str(e) for e in errors] for field, errors in response.context["form"].errors.items()
    }


def rows() -> list[tuple]:
    return list(SavedReply.objects.order_by("pk").values_list("title", "language", "text"))


# The service ---------------------------------------------------------------------------------


def test_create_stores_the_reply_with_its_author_and_no_event(manager):
    reply = new(manager, title="  Thanks  ", text="  Thank you, {name}!\n", language="it")

    stored = SavedReply.objects.get()
    assert stored.pk == reply.pk
    assert (stored.title, stored.text, stored.language) == ("Thanks", "Thank you, {name}!", "it")
    assert stored.created_by == manager
    # Not conversation history: no Event (see the service module's docstring).
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": "   "}, "title", "Give the saved reply a title."),
        ({"text": " \n "}, "text", "Write the text of the saved reply."),
        ({"title": "x" * 101}, "title", "The title is too long: at most 100 characters."),
        ({"text": "x" * 10001}, "text", "The text is too long: at most 10000 characters."),
        ({"language": "de"}, "language", "Unknown language “de”: use it, en."),
    ],
)
def test_create_refuses_bad_input_naming_the_field(manager, fields, field, message):
    data = {"title": "Thanks", "text": "Thank you", "language": "", **fields}

    with pytest.raises(InvalidInput) as refused:
        services.create_saved_reply(actor=manager, **data)

    assert refused.value.field == field
    assert refused.value.message == message
    assert rows() == []


def test_titles_are_unique_per_language_ignoring_case(manager):
    new(manager, title="Thanks", language="en")
    new(manager, title="Thanks", language="it")
    new(manager, title="Thanks", language="")

    with pytest.raises(InvalidInput) as refused:
        new(manager, title="thanks", language="en")
    assert refused.value.field == "title"
    assert refused.value.message == "There is already a saved reply called “thanks” in English."

    with pytest.raises(InvalidInput) as refused:
        new(manager, title="THANKS", language="")
    assert refused.value.message == (
        "There is already a saved reply called “THANKS” for any language."
    )
    assert SavedReply.objects.count() == 3


def test_a_lost_race_for_a_title_is_the_same_clear_error(manager, monkeypatch):
    new(manager, title="Thanks", language="en")
    # As if the other request committed between this one's check and its insert.
    monkeypatch.setattr(services, "_check_unique", lambda *args, **kwargs: None)

    with pytest.raises(InvalidInput) as refused:
        new(manager, title="Thanks", language="en")

    assert refused.value.field == "title"
    assert refused.value.message == "There is already a saved reply called “Thanks” in English."
    assert SavedReply.objects.count() == 1


def test_update_changes_the_reply_and_keeps_titles_unique(manager, other_manager):
    thanks = new(manager, title="Thanks", language="en")
    sorry = new(manager, title="Sorry", language="en")

    updated = services.update_saved_reply(
        sorry.pk, actor=other_manager, title="Apology", text="We are sorry, {name}.", language="it"
    )

    assert (updated.title, updated.text, updated.language) == (
        "Apology",
        "We are sorry, {name}.",
        "it",
    )
    assert SavedReply.objects.get(pk=sorry.pk).created_by == manager
    # Its own title, in another case, is not a clash with itself.
    services.update_saved_reply(
        thanks.pk, actor=manager, title="THANKS", text="Thanks!", language="en"
    )
    with pytest.raises(InvalidInput) as refused:
        services.update_saved_reply(
            sorry.pk, actor=manager, title="thanks", text="x", language="en"
        )
    assert refused.value.field == "title"
    assert SavedReply.objects.get(pk=sorry.pk).title == "Apology"


def test_update_of_a_deleted_reply_says_so(manager):
    reply = new(manager)
    services.delete_saved_reply(reply.pk, actor=manager)

    with pytest.raises(InvalidInput) as refused:
        services.update_saved_reply(reply.pk, actor=manager, title="T", text="x", language="")

    assert refused.value.field == "saved_reply"
    assert rows() == []


def test_delete_returns_the_reply_once_then_none(manager):
    reply = new(manager, title="Bye")

    deleted = services.delete_saved_reply(reply.pk, actor=manager)

    assert deleted.title == "Bye"
    assert rows() == []
    assert services.delete_saved_reply(reply.pk, actor=manager) is None


def test_only_community_managers_staff_and_the_system_write(manager, staff, product, outsider):
    reply = new(manager)
    new(staff, title="By staff")
    new(None, title="By the system")

    for who in (product, outsider):
        with pytest.raises(PermissionDenied):
            new(who, title="Nope")
        with pytest.raises(PermissionDenied):
            services.update_saved_reply(reply.pk, actor=who, title="Nope", text="x", language="")
        with pytest.raises(PermissionDenied):
            services.delete_saved_reply(reply.pk, actor=who)
    assert titles(SavedReply.objects.order_by("pk")) == ["Thanks", "By staff", "By the system"]


@pytest.mark.parametrize(
    ("text", "name", "handle", "filled"),
    [
        ("Hi {name}!", "Anna Rossi", "anna", "Hi Anna Rossi!"),
        ("Hi {name}!", "", "anna", "Hi anna!"),
        ("Hi {name}!", "   ", "@anna", "Hi anna!"),
        ("@{handle} thanks, {name}", "Anna", "@anna", "@anna thanks, Anna"),
        ("{name} {name}", "A", "a", "A A"),
        ("No placeholders {other}", "A", "a", "No placeholders {other}"),
        # A name that contains a placeholder is left as written, not filled again.
        ("Hi {name}", "{handle}", "anna", "Hi {handle}"),
    ],
)
def test_fill_placeholders(text, name, handle, filled):
    assert services.fill_placeholders(text, name=name, handle=handle) == filled


# The picker's query --------------------------------------------------------------------------


@pytest.fixture
def mixed(manager):
    """Two saved replies in each language, created out of order."""
    for title, language in [
        ("b English", "en"),
        ("b Italian", "it"),
        ("b Any", ""),
        ("a English", "en"),
        ("a Italian", "it"),
        ("A any", ""),
    ]:
        new(manager, title=title, language=language)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("it", ["a Italian", "b Italian", "A any", "b Any", "a English", "b English"]),
        ("en", ["a English", "b English", "A any", "b Any", "a Italian", "b Italian"]),
        ("en-GB", ["a English", "b English", "A any", "b Any", "a Italian", "b Italian"]),
        ("", ["A any", "b Any", "a English", "b English", "a Italian", "b Italian"]),
        ("fr", ["A any", "b Any", "a English", "b English", "a Italian", "b Italian"]),
    ],
)
def test_saved_replies_for_puts_the_conversations_language_first(
    mixed, language, expected, django_assert_num_queries
):
    with django_assert_num_queries(1):
        replies = queries.saved_replies_for(language)

    assert titles(replies) == expected


def test_saved_reply_groups_follow_the_language_choices_and_skip_empty_ones(manager):
    new(manager, title="Grazie", language="it")
    new(manager, title="b", language="")
    new(manager, title="A", language="")

    groups = queries.saved_reply_groups()

    assert [(g["language"], str(g["label"]), titles(g["replies"])) for g in groups] == [
        ("", "Any language", ["A", "b"]),
        ("it", "Italian", ["Grazie"]),
    ]


# The picker ----------------------------------------------------------------------------------

UNTRUSTED = "<script>alert(1)</script>"


def picker_html(conversation) -> str:
    return render_to_string(
        "engage/includes/saved_replies_picker.html",
        {
            "saved_replies": queries.saved_replies_for(conversation.language),
            "conversation": conversation,
        },
    )


def test_picker_fills_in_placeholders_and_escapes_untrusted_names(manager):
    new(manager, title="Grazie", text="Grazie {name} (@{handle})!", language="it")
    conversation = factories.conversation(author=Author(handle="m4llory", name=UNTRUSTED))
    conversation.language = "it"

    body = picker_html(conversation)

    assert "<script" not in body
    assert "alert(1)</script>" not in body
    filled = "Grazie &lt;script&gt;alert(1)&lt;/script&gt; (@m4llory)!"
    assert f'data-text="{filled}"' in body
    assert f">{filled}</p>" in body
    assert "{name}" not in body
    # What the browser reads back from the attribute is the exact text, as text.
    data = re.search(r'data-text="([^"]*)"', body).group(1)
    assert html.unescape(data) == f"Grazie {UNTRUSTED} (@m4llory)!"


def test_picker_uses_the_handle_when_the_contact_has_no_name(manager):
    new(manager, title="Hi", text="Hi {name}")
    conversation = factories.conversation(author=Author(handle="anna", name=""))

    assert 'data-text="Hi anna"' in picker_html(conversation)


def test_picker_lists_the_conversations_language_first_with_insert_copy_and_shortcut(mixed):
    conversation = factories.conversation()
    conversation.language = "en"

    body = picker_html(conversation)

    listed = re.findall(r'data-title="([^"]*)"', body)
    assert listed == ["a English", "b English", "A any", "b Any", "a Italian", "b Italian"]
    assert body.count("data-saved-reply-insert") == 6
    assert body.count("data-saved-reply-copy") == 6
    assert 'data-shortcut="s"' in body
    assert 'data-shortcut-help="Saved replies"' in body
    assert 'id="saved-replies-filter"' in body
    assert "style=" not in body
    assert "<script" not in body


def test_picker_without_saved_replies_links_to_the_page(db):
    conversation = factories.conversation()

    body = picker_html(conversation)

    assert "There are no saved replies yet." in body
    assert f'href="{LIST}"' in body
    assert "data-saved-reply-insert" not in body


# The pages: access ---------------------------------------------------------------------------


def test_pages_need_login(client, manager):
    reply = new(manager)

    for method, url in [
        ("get", LIST),
        ("post", CREATE),
        ("get", edit_url(reply)),
        ("post", edit_url(reply)),
        ("get", delete_url(reply)),
        ("post", delete_url(reply)),
    ]:
        response = getattr(client, method)(url, {"title": "x", "text": "y"})
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("login") + "?next="), (method, url)
    assert rows() == [("Thanks", "", "Thank you, {name}!")]


def test_outsiders_are_refused(client, outsider, manager):
    reply = new(manager)
    client.force_login(outsider)

    assert client.get(LIST).status_code == 403
    assert client.post(CREATE, {"title": "x", "text": "y"}).status_code == 403
    assert client.get(edit_url(reply)).status_code == 403
    assert client.post(edit_url(reply), {"title": "x", "text": "y"}).status_code == 403
    assert client.get(delete_url(reply)).status_code == 403
    assert client.post(delete_url(reply)).status_code == 403
    assert rows() == [("Thanks", "", "Thank you, {name}!")]


def test_product_team_reads_the_list_but_changes_nothing(client, product, manager):
    reply = new(manager, title="Thanks", language="it")
    client.force_login(product)

    page = client.get(LIST)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Thanks" in body
    assert "only community managers change them" in body
    assert 'method="post"' not in body.split('<main id="main">')[1]
    assert edit_url(reply) not in body
    assert delete_url(reply) not in body

    assert client.post(CREATE, {"title": "x", "text": "y"}).status_code == 403
    assert client.get(edit_url(reply)).status_code == 403
    assert client.post(edit_url(reply), {"title": "x", "text": "y"}).status_code == 403
    assert client.get(delete_url(reply)).status_code == 403
    assert client.post(delete_url(reply)).status_code == 403
    assert rows() == [("Thanks", "it", "Thank you, {name}!")]


@pytest.mark.parametrize("who", ["manager", "staff"])
def test_community_managers_and_staff_get_the_forms(client, request, who):
    user = request.getfixturevalue(who)
    reply = new(user)
    client.force_login(user)

    body = client.get(LIST).content.decode()

    assert f'action="{CREATE}"' in body
    assert edit_url(reply) in body
    assert delete_url(reply) in body


def test_writes_refuse_other_methods(client, manager):
    reply = new(manager)
    client.force_login(manager)

    assert client.get(CREATE).status_code == 405
    assert client.put(edit_url(reply)).status_code == 405
    assert client.delete(delete_url(reply)).status_code == 405
    assert SavedReply.objects.count() == 1


def test_unknown_reply_is_404(client, manager):
    client.force_login(manager)

    assert client.get("/saved-replies/999999/edit/").status_code == 404
    assert client.get("/saved-replies/999999/delete/").status_code == 404


# The pages: create, edit, delete -------------------------------------------------------------


def test_list_groups_replies_by_language(client, manager):
    new(manager, title="Thanks EN", language="en")
    new(manager, title="Grazie", language="it")
    new(manager, title="Generic", language="")
    client.force_login(manager)

    body = client.get(LIST).content.decode()

    headings = re.findall(r'<h2 id="saved-replies-(\w+)">([^<]+)', body)
    assert [(code, label.strip()) for code, label in headings] == [
        ("any", "Any language"),
        ("it", "Italian"),
        ("en", "English"),
    ]
    assert body.index("Generic") < body.index("Grazie") < body.index("Thanks EN")
    assert "Added by manager" in body


def test_empty_list_invites_to_write_the_first(client, manager):
    client.force_login(manager)

    body = client.get(LIST).content.decode()

    assert "No saved replies yet." in body
    assert "Write the first one with the form." in body


def test_create_through_the_page(client, manager):
    client.force_login(manager)

    response = client.post(
        CREATE, {"title": "Grazie", "language": "it", "text": "Grazie {name}!\nA presto."}
    )

    reply = SavedReply.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"{LIST}#saved-reply-{reply.pk}"
    assert (reply.title, reply.language, reply.text, reply.created_by) == (
        "Grazie",
        "it",
        "Grazie {name}!\nA presto.",
        manager,
    )
    page = client.get(response["Location"])
    assert messages_of(page) == ["Saved reply “Grazie” created."]
    assert f'id="saved-reply-{reply.pk}"' in page.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"title": "  ", "text": "x"}, "title", "Give the saved reply a title."),
        ({"title": "T", "text": "   "}, "text", "Write the text of the saved reply."),
        ({"title": "T", "text": "x", "language": "de"}, "language", None),
    ],
)
def test_create_shows_errors_and_keeps_the_input(client, manager, data, field, message):
    client.force_login(manager)

    response = client.post(CREATE, data)

    assert response.status_code == 422
    errors = errors_of(response)
    assert list(errors) == [field]
    if message:
        assert errors[field] == [message]
        assert message in response.content.decode()
    assert rows() == []


def test_create_with_a_taken_title_names_it(client, manager):
    new(manager, title="Thanks", language="en", text="first")
    client.force_login(manager)

    response = client.post(CREATE, {"title": "Thanks", "language": "en", "text": "second"})

    assert response.status_code == 422
    message = "There is already a saved reply called “Thanks” in English."
    assert errors_of(response) == {"title": [message]}
    body = response.content.decode()
    assert message in body
    assert "second</textarea>" in body
    # The same title in another language is another reply.
    response = client.post(CREATE, {"title": "Thanks", "language": "it", "text": "secondo"})
    assert response.status_code == 303
    assert rows() == [("Thanks", "en", "first"), ("Thanks", "it", "secondo")]


def test_edit_through_the_page(client, manager, other_manager):
    reply = new(manager, title="Thanks", language="en", text="Thanks {name}")
    client.force_login(other_manager)

    form = client.get(edit_url(reply))
    assert form.status_code == 200
    body = form.content.decode()
    assert 'value="Thanks"' in body
    assert "Thanks {name}</textarea>" in body

    response = client.post(
        edit_url(reply), {"title": "Grazie", "language": "it", "text": "Grazie {name}"}
    )

    assert response.status_code == 303
    assert response["Location"] == f"{LIST}#saved-reply-{reply.pk}"
    assert rows() == [("Grazie", "it", "Grazie {name}")]
    assert messages_of(client.get(LIST)) == ["Saved reply “Grazie” updated."]


def test_edit_shows_errors(client, manager):
    new(manager, title="Taken", language="")
    reply = new(manager, title="Mine", language="")
    client.force_login(manager)

    blank = client.post(edit_url(reply), {"title": "", "language": "", "text": "x"})
    taken = client.post(edit_url(reply), {"title": "taken", "language": "", "text": "x"})

    assert blank.status_code == 422
    assert errors_of(blank) == {"title": ["Give the saved reply a title."]}
    assert taken.status_code == 422
    assert errors_of(taken) == {
        "title": ["There is already a saved reply called “taken” for any language."]
    }
    assert rows() == [("Taken", "", "Thank you, {name}!"), ("Mine", "", "Thank you, {name}!")]


def test_delete_asks_for_confirmation_then_deletes(client, manager):
    reply = new(manager, title="Old one")
    client.force_login(manager)

    confirm = client.get(delete_url(reply))
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "Delete “Old one”?" in body
    assert f'action="{delete_url(reply)}"' in body
    assert SavedReply.objects.count() == 1

    response = client.post(delete_url(reply))
    assert response.status_code == 303
    assert response["Location"] == LIST
    assert rows() == []
    assert messages_of(client.get(LIST)) == ["Saved reply “Old one” deleted."]

    again = client.post(delete_url(reply))
    assert again.status_code == 303
    assert messages_of(client.get(LIST)) == ["That saved reply had already been deleted."]


# Untrusted text, CSP and query counts --------------------------------------------------------


def test_pages_escape_texts_and_have_no_inline_styles_or_scripts(client, manager):
    reply = new(manager, title=f"T {UNTRUSTED}", text=f"Body {UNTRUSTED}")
    client.force_login(manager)

    for url in [LIST, edit_url(reply), delete_url(reply)]:
        body = client.get(url).content.decode()
        assert "<script>alert" not in body, url
        assert "&lt;script&gt;" in body, url
        assert "style=" not in body, url
        assert "<style" not in body, url
        assert body.count("<script") == body.count('<script src="/static/'), url
        assert "/static/engage/css/saved_replies.css" in body, url


def _list_queries(client, count: int, actor) -> int:
    for i in range(SavedReply.objects.count(), count):
        new(actor, title=f"Reply {i}", language=ReplyLanguage.values[i % 3])
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST)
    assert response.status_code == 200
    assert sum(len(g["replies"]) for g in response.context["groups"]) == count
    return len(captured)


def test_list_query_count_does_not_grow_with_replies(client, manager, other_manager):
    client.force_login(manager)

    few = _list_queries(client, 1, manager)
    many = _list_queries(client, 30, other_manager)

    assert few == many
    # Session, user, roles, the saved replies with their authors, unread notifications, the
    # header's availability toggle.
    assert few == 6
