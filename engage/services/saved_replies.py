"""Saved replies (canned responses): create, change, delete; and filling in their placeholders.

Saved replies are the team's shared snippets, not part of any conversation, so their writes
record no Event: the history of a conversation is what happened to it. A saved reply that is
used leaves its trace there anyway, as the reply that was logged.
"""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from engage import permissions
from engage.choices import ReplyLanguage
from engage.errors import InvalidInput
from engage.models import SavedReply

TITLE_MAX_LENGTH = SavedReply._meta.get_field("title").max_length
# As long as a logged reply may be, so that an inserted saved reply always fits the form.
TEXT_MAX_LENGTH = 10000


def fill_placeholders(text: str, *, name: str, handle: str) -> str:
    """The text with `{name}` and `{handle}` replaced, for one contact.

    `{name}` is the contact's display name, or their handle when they have none; `{handle}`
    is the handle without a leading "@", so that "@{handle}" is always one mention. The
    result is plain text (never marked safe): templates escape it like any other text.
    """
    handle = (handle or "").strip().lstrip("@")
    name = (name or "").strip() or handle
    # One pass over the text, so a name that itself contains "{handle}" stays as written.
    parts = text.split("{name}")
    return name.join(part.replace("{handle}", handle) for part in parts)


def _clean(*, title: str, text: str, language: str) -> tuple[str, str, str]:
    title, text, language = (title or "").strip(), (text or "").strip(), language or ""
    if not title:
        raise InvalidInput(_("Give the saved reply a title."), field="title")
    if len(title) > TITLE_MAX_LENGTH:
        raise InvalidInput(
            _("The title is too long: at most %(max)s characters.") % {"max": TITLE_MAX_LENGTH},
            field="title",
        )
    if not text:
        raise InvalidInput(_("Write the text of the saved reply."), field="text")
    if len(text) > TEXT_MAX_LENGTH:
        raise InvalidInput(
            _("The text is too long: at most %(max)s characters.") % {"max": TEXT_MAX_LENGTH},
            field="text",
        )
    if language not in ReplyLanguage.values:
        raise InvalidInput(
            _("Unknown language “%(language)s”: use %(choices)s.")
            % {"language": language, "choices": ", ".join(v for v in ReplyLanguage.values if v)},
            field="language",
        )
    return title, text, language


def _duplicate(title: str, language: str) -> InvalidInput:
    if language:
        message = _("There is already a saved reply called “%(title)s” in %(language)s.") % {
            "title": title,
            "language": ReplyLanguage(language).label,
        }
    else:
        message = _("There is already a saved reply called “%(title)s” for any language.") % {
            "title": title
        }
    return InvalidInput(message, field="title")


def _check_unique(title: str, language: str, *, exclude: int | None = None) -> None:
    # Case-insensitive, unlike the database's constraint: "Thanks" and "thanks" side by
    # side in the picker would only confuse. The constraint still settles a race.
    clashes = SavedReply.objects.filter(language=language, title__iexact=title)
    if exclude is not None:
        clashes = clashes.exclude(pk=exclude)
    if clashes.exists():
        raise _duplicate(title, language)


def _save(reply: SavedReply, **kwargs) -> None:
    try:
        # A savepoint: the caller's transaction stays usable after a lost race.
        with transaction.atomic():
            reply.save(**kwargs)
    except IntegrityError:
        raise _duplicate(reply.title, reply.language) from None


@transaction.atomic
def create_saved_reply(*, actor, title: str, text: str, language: str = "") -> SavedReply:
    """Store a new saved reply. Titles are unique per language (ignoring case).

    Raises PermissionDenied unless the actor is a community manager (or staff, or the
    system), and InvalidInput(field=...) for a blank or too long title or text, an unknown
    language, or a title already used in that language.
    """
    permissions.require_work(actor)
    title, text, language = _clean(title=title, text=text, language=language)
    _check_unique(title, language)
    reply = SavedReply(title=title, text=text, language=language, created_by=actor)
    _save(reply)
    return reply


@transaction.atomic
def update_saved_reply(
    saved_reply_id: int, *, actor, title: str, text: str, language: str
) -> SavedReply:
    """Change a saved reply's title, text and language; the same rules as creating one.

    Raises PermissionDenied, and InvalidInput(field="saved_reply") when it no longer exists.
    """
    permissions.require_work(actor)
    title, text, language = _clean(title=title, text=text, language=language)
    reply = SavedReply.objects.select_for_update().filter(pk=saved_reply_id).first()
    if reply is None:
        raise InvalidInput(
            _("This saved reply does not exist any more: someone may have deleted it."),
            field="saved_reply",
        )
    _check_unique(title, language, exclude=reply.pk)
    reply.title, reply.text, reply.language = title, text, language
    _save(reply, update_fields=["title", "text", "language", "updated_at"])
    return reply


@transaction.atomic
def delete_saved_reply(saved_reply_id: int, *, actor) -> SavedReply | None:
    """Delete a saved reply and return it as it was (without its pk), or None when it was
    already gone: deleting twice is not an error.

    Raises PermissionDenied unless the actor is a community manager (or staff, or the system).
    """
    permissions.require_work(actor)
    reply = SavedReply.objects.select_for_update().filter(pk=saved_reply_id).first()
    if reply is not None:
        reply.delete()
    return reply
