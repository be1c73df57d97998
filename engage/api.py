"""The JSON API under /api/v1/: thin endpoints over engage.services and engage.queries.

Authentication is a Django session (with CSRF for unsafe methods) or
`Authorization: Bearer <token>` (see `manage.py create_api_token`). Roles come from
engage.permissions: the services refuse writes, `_viewer` refuses reads.

Every error is JSON `{"detail": ...}`:
- 400 a body that is not JSON, or a request that cannot be understood; 413 a body too large;
- 401 not authenticated, 403 the role does not allow it (or a failed CSRF check),
  404 an unknown id or path;
- 409 a rule refused the change (a skipped step, a stale `version`, already linked):
  `detail` is the refusal, written for a person;
- 422 invalid input: `detail` is a list of `{"field", "msg", "type"}`, where `field` is
  the dotted name of the offending input ("to", "author.handle", "cursor") or null.
"""

import logging
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyCookie, HttpBearer
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)

from engage import metrics, permissions, queries, workflow
from engage.choices import (
    Channel,
    Direction,
    EventKind,
    Priority,
    Sentiment,
    SourceKind,
    Stage,
    State,
    TicketStatus,
)
from engage.errors import Conflict, EngageError, InvalidInput, TransitionNotAllowed, VersionConflict
from engage.items import ItemInvalid, parse_item
from engage.models import Conversation, Event, FeedbackLink, FeedbackTicket, Message, Note, Source
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services import ingest as ingest_services
from engage.services import sources as source_services
from engage.services import tokens

log = logging.getLogger(__name__)

# The largest id a bigint primary key can hold; anything above cannot exist.
MAX_ID = queries.MAX_ID


# Authentication ------------------------------------------------------------------------


class BearerToken(HttpBearer):
    """`Authorization: Bearer eng_...`: a token from `manage.py create_api_token`."""

    def authenticate(self, request: HttpRequest, token: str):
        return tokens.authenticate(token)


class SessionCookie(APIKeyCookie):
    """Django's session, as ninja's `django_auth`, with its CSRF check on unsafe methods.

    An anonymous request is answered 401 before any CSRF check, so that a client without
    credentials learns that it must authenticate rather than that its CSRF token is missing.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest):
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None):
        return request.user


api = NinjaAPI(
    title="engage",
    version="1",
    description=__doc__,
    auth=[BearerToken(), SessionCookie()],
)


def _viewer(request: HttpRequest):
    """The authenticated user, who must have a role that reads conversations and tickets."""
    permissions.require_view(request.auth)
    return request.auth


# Input types -----------------------------------------------------------------------------


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and lone surrogates cannot be encoded at all.
    if "\x00" in value:
        raise ValueError(_("NUL characters are not allowed."))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(_("The text is not valid Unicode.")) from None
    return value


def _web_url(value: str) -> str:
    if value:
        try:
            URLValidator(schemes=["http", "https"])(value)
        except DjangoValidationError:
            raise ValueError(_("Enter a full http:// or https:// address.")) from None
    return value


# Times are bounded so that adding a response target or converting to UTC cannot overflow.
EARLIEST, LATEST = queries.EARLIEST, queries.LATEST


def _plausible_time(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(_("The time must be between the years 1900 and 9000."))
    return value


def Text(max_length: int | None = None, *, required: bool = False):  # a type, named as one
    """A string that the database can store; `required` means not blank once stripped."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1 if required else None, max_length=max_length
        ),
        AfterValidator(_storable),
    ]


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    AfterValidator(_storable),
    AfterValidator(_web_url),
]


def _time_text(value):
    # The schema promises an ISO 8601 string; pydantic would also read a number, as seconds
    # or milliseconds since 1970 depending on its size, which no client can mean by accident.
    if not isinstance(value, str | datetime):
        raise ValueError(_("Expected an ISO 8601 time, e.g. 2026-11-21T09:30:00Z."))
    return value


def _id_text(value):
    # Exports carry numeric ids (tweet ids): an integer is stored as its text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Time = Annotated[
    AwareDatetime,
    BeforeValidator(_time_text, json_schema_input_type=AwareDatetime),
    AfterValidator(_plausible_time),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Version = Annotated[int, Field(ge=1, le=MAX_ID)]
# An id in the address: one that no row can have (0, negative, beyond a bigint) is answered
# 404 by _on_validation_error before it reaches a query (SQLite cannot even bind it).
PathId = Annotated[int, Field(ge=1, le=MAX_ID)]
Username = Text(150)
PriorityKey = Literal["low", "normal", "high", "urgent"]
LONG_TEXT = 100_000


class Input(Schema):
    """Request bodies refuse unknown fields, so a misspelt `verison` is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# Output schemas ---------------------------------------------------------------------------


class Error(Schema):
    detail: str | list[dict]


class Contact(Schema):
    id: int
    handle: str
    name: str
    url: str


class ConversationOut(Schema):
    id: int
    stage: Stage
    cycle: int
    version: int
    state: State
    priority: PriorityKey
    assignee: str | None
    channel: Channel
    contact: Contact
    text: str
    needs_follow_up: bool
    source: str
    external_id: str
    url: str
    language: str
    sentiment: str
    tags: list[str]
    snoozed_until: datetime | None
    received_at: datetime
    first_response_due_at: datetime
    first_response_at: datetime | None
    sla_state: Literal["", "at_risk", "breached"] = Field(
        description='Against its first-response target while it waits: "" within, '
        '"at_risk" about to breach, "breached".'
    )
    stage_entered_at: datetime
    created_at: datetime


class MessageOut(Schema):
    id: int
    direction: Direction
    author_handle: str
    author_name: str
    text: str
    url: str
    sent_at: datetime
    cycle: int
    logged_by: str | None


class NoteOut(Schema):
    id: int
    author: str
    text: str
    created_at: datetime


class EventOut(Schema):
    id: int
    kind: EventKind
    actor: str | None
    from_stage: str
    to_stage: str
    cycle: int | None
    reason: str
    data: dict
    created_at: datetime


class FeedbackOfConversation(Schema):
    ticket: int
    title: str
    status: TicketStatus
    quote: str
    cycle: int


class ConversationDetail(ConversationOut):
    next_stage: Stage | None = Field(description="The stage an advance would lead to.")
    advance_blocked_by: str | None = Field(
        description="What the next advance still needs, or null when it may happen."
    )
    messages: list[MessageOut]
    notes: list[NoteOut]
    events: list[EventOut]
    feedback: list[FeedbackOfConversation]


class ConversationPage(Schema):
    items: list[ConversationOut]
    next_cursor: str | None


class TicketOut(Schema):
    id: int
    title: str
    problem: str
    product_area: str
    status: TicketStatus
    owner: str | None
    demand: int = Field(description="Distinct people who asked.")
    evidence_count: int
    told_count: int = Field(description="Evidence links whose person was told.")
    told_people: int = Field(description="Distinct people told that it shipped or was declined.")
    latest_evidence_at: datetime | None = Field(description="When the latest evidence was linked.")
    merged_into: int | None = Field(
        description="The ticket this duplicate was merged into (its evidence is there)."
    )
    created_at: datetime
    status_changed_at: datetime


class EvidenceOut(Schema):
    id: int
    conversation: int
    contact_handle: str
    channel: Channel
    quote: str
    cycle: int
    told_at: datetime | None
    created_at: datetime


class TicketDetail(TicketOut):
    evidence: list[EvidenceOut]
    events: list[EventOut]


class TicketPage(Schema):
    items: list[TicketOut]
    next_offset: int | None


# Serialisation: the one place that turns models into the shapes above. --------------------


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _conversation(conversation: Conversation) -> dict:
    """A conversation as the API shows it. Expects `queries.conversations()` joins."""
    contact = conversation.contact
    return {
        "id": conversation.pk,
        "stage": conversation.stage,
        "cycle": conversation.cycle,
        "version": conversation.version,
        "state": conversation.state,
        "priority": Priority(conversation.priority).key,
        "assignee": _username(conversation.assignee),
        "channel": conversation.channel,
        "contact": {
            "id": contact.pk,
            "handle": contact.handle,
            "name": contact.name,
            "url": contact.profile_url,
        },
        "text": conversation.text,
        "needs_follow_up": conversation.needs_follow_up,
        "source": conversation.source.name,
        "external_id": conversation.external_id,
        "url": conversation.url,
        "language": conversation.language,
        "sentiment": conversation.sentiment,
        "tags": [tag.name for tag in conversation.tags.all()],
        "snoozed_until": conversation.snoozed_until,
        "received_at": conversation.received_at,
        "first_response_due_at": conversation.first_response_due_at,
        "first_response_at": conversation.first_response_at,
        "sla_state": conversation.sla_state,
        "stage_entered_at": conversation.stage_entered_at,
        "created_at": conversation.created_at,
    }


def _message(message: Message) -> dict:
    return {
        "id": message.pk,
        "direction": message.direction,
        "author_handle": message.author_handle,
        "author_name": message.author_name,
        "text": message.text,
        "url": message.url,
        "sent_at": message.sent_at,
        "cycle": message.cycle,
        "logged_by": _username(message.author_user),
    }


def _note(note: Note) -> dict:
    return {
        "id": note.pk,
        "author": note.author.get_username(),
        "text": note.text,
        "created_at": note.created_at,
    }


def _event(event: Event) -> dict:
    return {
        "id": event.pk,
        "kind": event.kind,
        "actor": _username(event.actor),
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "cycle": event.cycle,
        "reason": event.reason,
        "data": event.data,
        "created_at": event.created_at,
    }


def _conversation_detail(conversation: Conversation) -> dict:
    """Expects `queries.conversation_detail()`: its prefetches and cycle annotations."""
    next_stage, blocked_by = workflow.advance_outlook(queries.detail_facts(conversation))
    return {
        **_conversation(conversation),
        "next_stage": next_stage,
        "advance_blocked_by": blocked_by,
        "messages": [_message(message) for message in conversation.messages.all()],
        "notes": [_note(note) for note in conversation.notes.all()],
        "events": [_event(event) for event in conversation.events.all()],
        "feedback": [
            {
                "ticket": link.ticket_id,
                "title": link.ticket.title,
                "status": link.ticket.status,
                "quote": link.quote,
                "cycle": link.cycle,
            }
            for link in conversation.feedback_links.all()
        ],
    }


def _ticket(ticket: FeedbackTicket) -> dict:
    """A ticket as the API shows it, with its stored counts. Expects `queries.tickets()`."""
    return {
        "id": ticket.pk,
        "title": ticket.title,
        "problem": ticket.problem,
        "product_area": ticket.product_area,
        "status": ticket.status,
        "owner": _username(ticket.owner),
        "demand": ticket.demand,
        "evidence_count": ticket.evidence_count,
        "told_count": ticket.told_count,
        "told_people": ticket.told_people,
        "latest_evidence_at": ticket.latest_evidence_at,
        "merged_into": ticket.merged_into_id,
        "created_at": ticket.created_at,
        "status_changed_at": ticket.status_changed_at,
    }


def _evidence(link: FeedbackLink) -> dict:
    return {
        "id": link.pk,
        "conversation": link.conversation_id,
        "contact_handle": link.conversation.contact.handle,
        "channel": link.conversation.channel,
        "quote": link.quote,
        "cycle": link.cycle,
        "told_at": link.told_at,
        "created_at": link.created_at,
    }


def _ticket_detail(ticket: FeedbackTicket) -> dict:
    return {
        **_ticket(ticket),
        "evidence": [_evidence(link) for link in ticket.links.all()],
        "events": [_event(event) for event in ticket.events.all()],
    }


def _current(conversation_id: int) -> dict:
    """Re-read a conversation after a write, with what its serialisation needs."""
    return _conversation(queries.conversations().get(pk=conversation_id))


@contextmanager
def _not_found_as(field: str):
    """Turn a service's "X does not exist" about the object named in the path into a 404.

    Services report an unknown id as InvalidInput on their `field`; when that id came from
    the URL, the honest answer is 404, while an unknown id in the body stays a 422.
    """
    try:
        yield
    except InvalidInput as error:
        if error.field == field:
            raise Http404(error.message) from error
        raise


# Error handlers: one place maps domain errors to responses. ------------------------------


def _detail(request: HttpRequest, status: int, detail) -> HttpResponse:
    return api.create_response(request, {"detail": detail}, status=status)


# ninja names a body parameter in `loc`; every body parameter here is called `payload`.
_LOCATIONS = {"body", "query", "path", "header", "cookie", "form", "file"}


def _field_name(loc) -> str | None:
    parts = [str(part) for part in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    if parts and parts[0] in {"payload", "filters"}:
        parts = parts[1:]
    return ".".join(parts) or None


@api.exception_handler(ValidationError)
def _on_validation_error(request, exc: ValidationError):
    if any(tuple(error.get("loc", ()))[:1] == ("path",) for error in exc.errors):
        return _detail(request, 404, _("Not found."))
    return _detail(
        request,
        422,
        [
            {
                "field": _field_name(error.get("loc", ())),
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "invalid")),
            }
            for error in exc.errors
        ],
    )


@api.exception_handler(InvalidInput)
def _on_invalid_input(request, exc: InvalidInput):
    return _detail(request, 422, [{"field": exc.field, "msg": exc.message, "type": "invalid"}])


@api.exception_handler(TransitionNotAllowed)
@api.exception_handler(VersionConflict)
@api.exception_handler(Conflict)
def _on_refusal(request, exc: EngageError):
    return _detail(request, 409, exc.message)


@api.exception_handler(PermissionDenied)
def _on_permission_denied(request, exc: PermissionDenied):
    return _detail(request, 403, str(exc) or _("Your role does not allow this."))


@api.exception_handler(Http404)
@api.exception_handler(ObjectDoesNotExist)
def _on_not_found(request, exc: Exception):
    message = str(exc) if isinstance(exc, Http404) and str(exc) else _("Not found.")
    return _detail(request, 404, message)


@api.exception_handler(AuthenticationError)
def _on_unauthenticated(request, exc: AuthenticationError):
    response = _detail(
        request, 401, _("Authentication required: log in, or send “Authorization: Bearer <token>”.")
    )
    response["WWW-Authenticate"] = 'Bearer realm="engage"'
    return response


@api.exception_handler(HttpError)
def _on_http_error(request, exc: HttpError):
    # ninja raises HttpError for a body that is not JSON (400) and a failed CSRF check (403).
    messages = {
        400: _("The request body is not valid JSON."),
        403: _("CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header."),
    }
    return _detail(request, exc.status_code, messages.get(exc.status_code, str(exc)))


@api.exception_handler(RequestDataTooBig)
def _on_too_big(request, exc: Exception):
    return _detail(request, 413, _("The request body is too large."))


@api.exception_handler(TooManyFieldsSent)
@api.exception_handler(SuspiciousOperation)
def _on_bad_request(request, exc: Exception):
    return _detail(request, 400, _("The request could not be understood."))


@api.exception_handler(Exception)
def _on_unexpected(request, exc: Exception):
    if settings.DEBUG:
        raise exc
    log.exception("Unexpected error in %s %s", request.method, request.path)
    return _detail(request, 500, _("Something went wrong on our side. Please try again."))


# Every operation may answer these: 400 (a body that is not JSON, a malformed request) and
# 413 (a body over DATA_UPLOAD_MAX_MEMORY_SIZE) come before any parameter is read.
ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 413: Error, 422: Error}


# Conversations ----------------------------------------------------------------------------


class ConversationFilters(Schema):
    stage: Stage | None = None
    assignee: Username | None = Field(None, description="A username, `none` or `me`.")
    state: State | None = None
    q: Text(200) = ""
    channel: Channel | None = None
    priority: PriorityKey | None = None
    language: Text(10) | None = Field(None, description="A language code: `it`, `en`…")
    sentiment: Sentiment | None = None
    tag: Text(60) | None = None
    overdue: bool = Field(False, description="Only those still waiting past their due time.")
    follow_up: bool | None = None
    sort: Literal["due", "newest", "oldest", "priority"] = Field(
        "due",
        description="`due`: waiting for an answer first, most overdue first; `priority`: "
        "urgent to low, then by due time; `newest`/`oldest`: by the time received.",
    )
    limit: int = Field(50, ge=1, le=200)
    cursor: Text(500) | None = None


class AuthorIn(Input):
    handle: Text(200, required=True)
    name: Text(200) = ""
    url: Url = ""


class ItemIn(Input):
    """The item shape shared with imports and feeds. `source` names a source; an unknown
    name creates an API source. (source, external_id) is unique: posting it again returns
    the stored conversation."""

    source: Text(200, required=True)
    external_id: Annotated[
        Text(255, required=True),
        BeforeValidator(_id_text, json_schema_input_type=Text(255, required=True) | int),
    ] = Field(description="Text, or an integer (stored as its text).")
    channel: Channel
    author: AuthorIn
    text: Text(LONG_TEXT, required=True)
    url: Url = ""
    created_at: Time | None = None
    priority: PriorityKey = "normal"


class AdvanceIn(Input):
    to: Stage | None = Field(None, description="When given, must be the next stage.")
    version: Version | None = None


class RestartIn(Input):
    reason: Text(LONG_TEXT, required=True)
    version: Version | None = None


class AssignIn(Input):
    assignee: Username | None = Field(description="A username, or null to unassign.")
    version: Version | None = None


class ClaimIn(Input):
    stage: Stage | None = None


class ReplyIn(Input):
    text: Text(LONG_TEXT, required=True)
    url: Url = ""


class NoteIn(Input):
    text: Text(LONG_TEXT, required=True)


class NoChangeIn(Input):
    reason: Text(LONG_TEXT, required=True)


class PriorityIn(Input):
    priority: PriorityKey
    version: Version | None = None


class StateIn(Input):
    state: State
    snoozed_until: Time | None = None
    version: Version | None = None


@api.get("/conversations", response={200: ConversationPage, **ERRORS}, tags=["conversations"])
def list_conversations(request, filters: Query[ConversationFilters]):
    """The queue, in keyset pages: pass `next_cursor` back as `cursor` for the next page."""
    user = _viewer(request)
    page = queries.queue_page(
        queries.QueueFilter(
            stage=filters.stage,
            state=filters.state,
            assignee=filters.assignee,
            channel=filters.channel,
            priority=filters.priority,
            language=filters.language,
            sentiment=filters.sentiment,
            tag=filters.tag,
            overdue=filters.overdue,
            follow_up=filters.follow_up,
            q=filters.q,
            sort=filters.sort,
        ),
        user=user,
        cursor=filters.cursor,
        limit=filters.limit,
    )
    return {"items": [_conversation(c) for c in page.items], "next_cursor": page.next_cursor}


@api.post(
    "/conversations",
    response={200: ConversationOut, 201: ConversationOut, **ERRORS},
    tags=["conversations"],
)
def create_conversation(request, payload: ItemIn):
    """Store a conversation: 201 when new, 200 with the stored one when already known."""
    item = conversation_services.Item(
        source=payload.source,
        external_id=payload.external_id,
        channel=payload.channel,
        author=conversation_services.Author(
            handle=payload.author.handle, name=payload.author.name, url=payload.author.url
        ),
        text=payload.text,
        url=payload.url,
        created_at=payload.created_at,
        priority=payload.priority,
    )
    conversation, created = conversation_services.create_conversation(item, actor=request.auth)
    return Status(201 if created else 200, _current(conversation.pk))


class IngestIn(Schema):
    """A batch of items. Each is checked on its own: one bad item never rejects the others."""

    items: list[Any] = Field(
        min_length=1,
        max_length=settings.ENGAGE_INGEST_BATCH_LIMIT,
        description="Up to 1,000 items: source, external_id, channel, author {handle, name, "
        "url}, text, url, created_at, in_reply_to, direction (inbound|outbound), priority.",
    )


class FieldErrorOut(Schema):
    field: str
    message: str


class IngestResult(Schema):
    index: int
    status: Literal["created", "known", "error"]
    conversation: int | None = Field(
        None, description="Absent for errors, and for our reply that waits for its parent."
    )
    duplicate: bool | None = Field(
        None, description="Present (true) when kept as the same person's same text again."
    )
    errors: list[FieldErrorOut] | None = None


class IngestOut(Schema):
    results: list[IngestResult]


@api.post(
    "/ingest",
    response={200: IngestOut, **ERRORS},
    tags=["listening"],
    exclude_none=True,
)
def ingest(request, payload: IngestIn):
    """Store a batch of messages: one result per item, in order. "created" is new, "known"
    was already stored (or is the same person's same text again, `duplicate`), "error"
    lists what is wrong with that item, by field. Stored items are committed before the
    answer, even when the job queue is down."""
    permissions.require_work(request.auth)
    results: list[dict] = [{} for _item in payload.items]
    valid, positions = [], []
    for index, raw in enumerate(payload.items):
        try:
            valid.append(parse_item(raw))
            positions.append(index)
        except ItemInvalid as invalid:
            results[index] = {
                "index": index,
                "status": "error",
                "errors": [{"field": e.field, "message": e.message} for e in invalid.errors],
            }
    outcomes = ingest_services.ingest(valid, actor=request.auth, kind=SourceKind.API)
    for index, outcome in zip(positions, outcomes, strict=True):
        result = {"index": index, "status": outcome.status, "conversation": outcome.conversation}
        if outcome.duplicate:
            result["duplicate"] = True
        if outcome.errors:
            result["errors"] = [{"field": e.field, "message": e.message} for e in outcome.errors]
        results[index] = result
    return {"results": results}


@api.get(
    "/conversations/{conversation_id}",
    response={200: ConversationDetail, **ERRORS},
    tags=["conversations"],
)
def get_conversation(request, conversation_id: PathId):
    """One conversation with its thread, notes, history and evidence."""
    _viewer(request)
    return _conversation_detail(queries.conversation_detail(conversation_id))


@api.post(
    "/conversations/{conversation_id}/advance",
    response={200: ConversationOut, **ERRORS},
    tags=["cycle"],
)
def advance(request, conversation_id: PathId, payload: AdvanceIn):
    """Move one step on (listen → interact → react → sell). 409 names what is missing."""
    with _not_found_as("conversation"):
        conversation_services.advance(
            conversation_id, actor=request.auth, to=payload.to, expected_version=payload.version
        )
    return _current(conversation_id)


@api.post(
    "/conversations/{conversation_id}/restart",
    response={200: ConversationOut, **ERRORS},
    tags=["cycle"],
)
def restart(request, conversation_id: PathId, payload: RestartIn):
    """Go back to listen from any stage, with a reason, starting the next cycle."""
    with _not_found_as("conversation"):
        conversation_services.restart(
            conversation_id,
            actor=request.auth,
            reason=payload.reason,
            expected_version=payload.version,
        )
    return _current(conversation_id)


@api.post(
    "/conversations/{conversation_id}/assign",
    response={200: ConversationOut, **ERRORS},
    tags=["conversations"],
)
def assign(request, conversation_id: PathId, payload: AssignIn):
    """Give the conversation to a community manager, or to nobody with null."""
    permissions.require_work(request.auth)
    assignee = None
    if payload.assignee is not None:
        assignee = conversation_services.user_by_username(payload.assignee)
    with _not_found_as("conversation"):
        conversation_services.assign(
            conversation_id, assignee, actor=request.auth, expected_version=payload.version
        )
    return _current(conversation_id)


@api.post(
    "/queue/claim",
    response={200: ConversationOut, 204: None, **ERRORS},
    tags=["conversations"],
)
def claim(request, payload: ClaimIn | None = None):
    """Take the oldest-due unassigned open conversation (of `stage`): 204 when none is left."""
    stage = payload.stage if payload is not None else None
    conversation = conversation_services.claim_next(actor=request.auth, stage=stage)
    if conversation is None:
        return Status(204, None)
    return _current(conversation.pk)


@api.post(
    "/conversations/{conversation_id}/replies",
    response={201: MessageOut, **ERRORS},
    tags=["conversations"],
)
def log_reply(request, conversation_id: PathId, payload: ReplyIn):
    """Log our reply in the current cycle (written here or on the network itself)."""
    with _not_found_as("conversation"):
        message = conversation_services.log_reply(
            conversation_id, actor=request.auth, text=payload.text, url=payload.url
        )
    return Status(201, _message(message))


@api.post(
    "/conversations/{conversation_id}/notes",
    response={201: NoteOut, **ERRORS},
    tags=["conversations"],
)
def add_note(request, conversation_id: PathId, payload: NoteIn):
    """Add an internal note, never shown outside."""
    with _not_found_as("conversation"):
        note = conversation_services.add_note(
            conversation_id, actor=request.auth, text=payload.text
        )
    return Status(201, _note(note))


@api.post(
    "/conversations/{conversation_id}/no-change",
    response={201: ConversationOut, **ERRORS},
    tags=["cycle"],
)
def record_no_change(request, conversation_id: PathId, payload: NoChangeIn):
    """Record, in react, that this cycle needs no product change, and why.

    Answers 201 (the record is created) with the conversation, which may now advance to
    sell; 409 outside react or when this cycle already has such a record.
    """
    with _not_found_as("conversation"):
        conversation_services.record_no_change(
            conversation_id, actor=request.auth, reason=payload.reason
        )
    return Status(201, _current(conversation_id))


@api.post(
    "/conversations/{conversation_id}/priority",
    response={200: ConversationOut, **ERRORS},
    tags=["conversations"],
)
def set_priority(request, conversation_id: PathId, payload: PriorityIn):
    """Change the priority; the first-response due time follows unless already answered."""
    with _not_found_as("conversation"):
        conversation_services.set_priority(
            conversation_id, payload.priority, actor=request.auth, expected_version=payload.version
        )
    return _current(conversation_id)


@api.post(
    "/conversations/{conversation_id}/state",
    response={200: ConversationOut, **ERRORS},
    tags=["conversations"],
)
def set_state(request, conversation_id: PathId, payload: StateIn):
    """Open, snooze (with `snoozed_until` in the future) or close a conversation."""
    with _not_found_as("conversation"):
        conversation_services.set_state(
            conversation_id,
            payload.state,
            actor=request.auth,
            snoozed_until=payload.snoozed_until,
            expected_version=payload.version,
        )
    return _current(conversation_id)


# Sources ----------------------------------------------------------------------------------
# Where conversations come from, and how each feed's polling goes. Everyone with a role reads
# them; only staff add, change, pause, remove, restore and poll (engage.services.sources).


class SourceOut(Schema):
    id: int
    name: str
    kind: SourceKind
    channel: Channel
    url: str = Field(description="The feed's address; empty for API and file sources.")
    keywords: str = Field(description="Comma-separated brand terms; empty keeps every entry.")
    poll_interval_minutes: int
    is_active: bool = Field(description="False while paused (and once removed): not polled.")
    created_at: datetime
    removed_at: datetime | None
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_error: str = Field(
        description="The last poll's failure, or the warnings (skipped entries) of a success "
        "when `last_error_at` is not after `last_success_at`."
    )
    last_error_at: datetime | None
    failures: int = Field(description="Failed polls in a row: above 0 the feed is failing.")
    items_added_last: int = Field(description="New conversations from the last poll.")
    items_added_total: int
    next_poll_at: datetime | None


class SourceList(Schema):
    items: list[SourceOut]


class SourceFilters(Schema):
    removed: bool = Field(False, description="Include the removed sources.")


PollInterval = Annotated[int, Field(ge=1, le=7 * 24 * 60)]


class SourceIn(Input):
    """A new RSS or Atom feed, polled from now on."""

    name: Text(200, required=True)
    url: Url = Field(description="An http:// or https:// address of an RSS or Atom feed.")
    channel: Channel = Channel.BLOG
    keywords: Text(500) = Field("", description="Comma-separated brand terms to keep.")
    poll_interval_minutes: PollInterval = 15


class SourcePatch(Input):
    """Only the fields sent change; `is_active` pauses (false) or resumes (true)."""

    name: Text(200, required=True) | None = None
    url: Url | None = None
    channel: Channel | None = None
    keywords: Text(500) | None = None
    poll_interval_minutes: PollInterval | None = None
    is_active: bool | None = None


def _source(source: Source) -> dict:
    return {name: getattr(source, name) for name in SourceOut.model_fields}


def _source_or_404(source_id: int) -> Source:
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        raise Http404(_("Source %(id)s does not exist.") % {"id": source_id})
    return source


def _staff(request: HttpRequest) -> None:
    """Writes on sources are for staff: anyone else is refused before the id is looked up."""
    permissions.require(permissions.is_staff(request.auth), _("Only staff can change sources."))


@api.get("/sources", response={200: SourceList, **ERRORS}, tags=["sources"])
def list_sources(request, filters: Query[SourceFilters]):
    """Every source in use, by name, with its polling health; `removed=true` adds the removed."""
    _viewer(request)
    sources = Source.objects.order_by("name")
    if not filters.removed:
        sources = sources.filter(removed_at__isnull=True)
    return {"items": [_source(source) for source in sources]}


@api.post("/sources", response={201: SourceOut, **ERRORS}, tags=["sources"])
def add_source(request, payload: SourceIn):
    """Add an RSS or Atom feed (staff only). It is due at once: polled within a minute."""
    _staff(request)
    source = source_services.add_feed(actor=request.auth, **payload.model_dump())
    return Status(201, _source(source))


@api.get("/sources/{source_id}", response={200: SourceOut, **ERRORS}, tags=["sources"])
def get_source(request, source_id: PathId):
    """One source, removed or not, with its polling health."""
    _viewer(request)
    return _source(_source_or_404(source_id))


@api.patch("/sources/{source_id}", response={200: SourceOut, **ERRORS}, tags=["sources"])
def update_source(request, source_id: PathId, payload: SourcePatch):
    """Change a source (staff only); `is_active` pauses or resumes it. All the changes sent
    happen in one transaction, or none does. A new `url` is polled at once."""
    _staff(request)
    changes = {name: getattr(payload, name) for name in payload.model_fields_set}
    for name, value in changes.items():
        if value is None:
            raise InvalidInput(_("This field cannot be null."), field=name)
    active = changes.pop("is_active", None)
    with transaction.atomic():
        source = _source_or_404(source_id)
        if changes:
            source = source_services.update_source(source_id, actor=request.auth, **changes)
        # Resuming also retries a failing feed at once: only when it really was paused.
        if active is not None and active != source.is_active:
            source = source_services.set_active(source_id, actor=request.auth, active=active)
    return _source(source)


@api.delete("/sources/{source_id}", response={200: SourceOut, **ERRORS}, tags=["sources"])
def remove_source(request, source_id: PathId):
    """Remove a source (staff only): no longer polled or listed; its conversations stay."""
    _staff(request)
    _source_or_404(source_id)
    return _source(source_services.remove(source_id, actor=request.auth))


@api.post("/sources/{source_id}/restore", response={200: SourceOut, **ERRORS}, tags=["sources"])
def restore_source(request, source_id: PathId):
    """Put a removed source back on the list (staff only). It stays paused until resumed."""
    _staff(request)
    _source_or_404(source_id)
    return _source(source_services.restore(source_id, actor=request.auth))


@api.post("/sources/{source_id}/poll", response={202: SourceOut, **ERRORS}, tags=["sources"])
def poll_source(request, source_id: PathId):
    """Poll a feed now (staff only): 202, the poll runs as a job; read the source again for
    its outcome. 422 for a source that is not a feed."""
    _staff(request)
    _source_or_404(source_id)
    source = source_services.poll_now(source_id, actor=request.auth)
    return Status(202, _source(source))


# Dashboard --------------------------------------------------------------------------------
# The figures of /dashboard/ (engage.metrics) for the same query string. Everyone with a role
# reads them. Durations are in seconds, shares from 0 to 1; null where there is no data.


class DashboardFilters(Schema):
    period: Literal["7d", "30d", "90d"] | None = Field(
        None, description="The days up to now (default `30d`). Dates win over it."
    )
    start: date | None = Field(
        None, description="With `end`: from the start of this day (site's time zone)."
    )
    end: date | None = Field(None, description="With `start`: to the end of this day.")
    channel: Channel | None = None
    assignee: Username | None = Field(
        None, description="A team member's username: the conversations assigned to them now."
    )


class ScopeOut(Schema):
    start: datetime = Field(description="The period is [start, end).")
    end: datetime
    channel: Channel | None
    assignee: str | None


class FunnelStepOut(Schema):
    stage: Stage
    reached: int = Field(description="Conversations received in the period that reached it.")
    conversion: float | None = Field(
        description="reached / the previous step's reached; null for listen or after 0."
    )
    median_seconds: float | None = Field(description="Median time spent in the step.")


class RestartReasonOut(Schema):
    reason: str
    count: int


class FunnelOut(Schema):
    steps: list[FunnelStepOut]
    restarts: int = Field(description="Restarts to listen in the period.")
    restart_reasons: list[RestartReasonOut] = Field(description="Most frequent first.")


class ResponseFiguresOut(Schema):
    label: str = Field(
        description="The channel, priority key or username of the group; "
        "empty for the overall figures and for the unassigned conversations."
    )
    conversations: int
    answered: int
    median_seconds: float | None = Field(description="Median time to the first response.")
    p90_seconds: float | None = Field(description="90th percentile of the same.")
    within_target: int = Field(description="Answered by their first-response due time.")
    breached: int = Field(description="Answered late, or still waiting past the due time.")
    share_within_target: float | None = Field(
        description="within_target / (within_target + breached); null when none is due yet."
    )


class WaitingOut(Schema):
    id: int
    channel: Channel
    priority: PriorityKey
    stage: Stage
    state: State
    assignee: str | None
    contact: Contact
    text: str
    received_at: datetime
    first_response_due_at: datetime
    sla_state: Literal["", "at_risk", "breached"]


class ResponsivenessOut(Schema):
    overall: ResponseFiguresOut
    by_channel: list[ResponseFiguresOut] = Field(description="Most conversations first.")
    by_priority: list[ResponseFiguresOut] = Field(description="Urgent first.")
    by_person: list[ResponseFiguresOut] = Field(description='Unassigned (label "") last.')
    waiting: list[WaitingOut] = Field(
        description="Still waiting for a first response (not closed), oldest first; the first few."
    )
    waiting_count: int


class PersonLoadOut(Schema):
    assignee: str | None = Field(description="A username; null for the unassigned ones.")
    by_stage: dict[Stage, int] = Field(description="Open or snoozed conversations now.")
    total: int


class BacklogPointOut(Schema):
    taken_at: datetime
    open: int
    unassigned: int


class WorkloadOut(Schema):
    people: list[PersonLoadOut]
    backlog: list[BacklogPointOut] = Field(description="Hourly snapshots in the period.")


class TicketDemandOut(Schema):
    id: int
    title: str
    status: TicketStatus
    demand: int = Field(description="Distinct people who asked.")
    told: int = Field(description="Distinct people told.")


class FeedbackFiguresOut(Schema):
    opened: int
    shipped: int
    declined: int
    top: list[TicketDemandOut] = Field(description="The most demanded tickets.")
    told_after_ship: int = Field(description="People told, over the tickets shipped.")
    to_tell_after_ship: int = Field(description="People still to tell, over the same.")


class DashboardOut(Schema):
    scope: ScopeOut
    funnel: FunnelOut
    responsiveness: ResponsivenessOut
    workload: WorkloadOut
    feedback: FeedbackFiguresOut


def _response_figures(figures: metrics.ResponseFigures) -> dict:
    return {
        "label": figures.label,
        "conversations": figures.conversations,
        "answered": figures.answered,
        "median_seconds": figures.median_seconds,
        "p90_seconds": figures.p90_seconds,
        "within_target": figures.within_target,
        "breached": figures.breached,
        "share_within_target": figures.share_within_target,
    }


def _waiting(conversation: Conversation) -> dict:
    """Expects the contact and assignee joined (engage.metrics.responsiveness does)."""
    contact = conversation.contact
    return {
        "id": conversation.pk,
        "channel": conversation.channel,
        "priority": Priority(conversation.priority).key,
        "stage": conversation.stage,
        "state": conversation.state,
        "assignee": _username(conversation.assignee),
        "contact": {
            "id": contact.pk,
            "handle": contact.handle,
            "name": contact.name,
            "url": contact.profile_url,
        },
        "text": conversation.text,
        "received_at": conversation.received_at,
        "first_response_due_at": conversation.first_response_due_at,
        "sla_state": conversation.sla_state,
    }


@api.get("/dashboard", response={200: DashboardOut, **ERRORS}, tags=["dashboard"])
def dashboard(request, filters: Query[DashboardFilters]):
    """The funnel, responsiveness, workload and feedback figures of /dashboard/ for a period
    (`period`, or `start` and `end`), a channel and a team member. The funnel and the
    response figures are about the conversations received in the period; the workload is
    now; the backlog is the hourly snapshots of the period."""
    _viewer(request)
    params = {
        name: value if isinstance(value, str) else value.isoformat()
        for name, value in (
            ("period", filters.period),
            ("start", filters.start),
            ("end", filters.end),
            ("channel", filters.channel),
            ("assignee", filters.assignee),
        )
        if value
    }
    scope = metrics.scope_from(params)
    funnel = metrics.funnel(scope)
    responsiveness = metrics.responsiveness(scope)
    workload = metrics.workload(scope)
    feedback = metrics.feedback_figures(scope)
    return {
        "scope": {
            "start": scope.start,
            "end": scope.end,
            "channel": scope.channel or None,
            "assignee": params.get("assignee"),
        },
        "funnel": {
            "steps": [
                {
                    "stage": step.stage,
                    "reached": step.reached,
                    "conversion": step.conversion,
                    "median_seconds": step.median_seconds,
                }
                for step in funnel.steps
            ],
            "restarts": funnel.restarts,
            "restart_reasons": [
                {"reason": reason, "count": count} for reason, count in funnel.restart_reasons
            ],
        },
        "responsiveness": {
            "overall": _response_figures(responsiveness.overall),
            "by_channel": [_response_figures(row) for row in responsiveness.by_channel],
            "by_priority": [_response_figures(row) for row in responsiveness.by_priority],
            "by_person": [_response_figures(row) for row in responsiveness.by_person],
            "waiting": [_waiting(conversation) for conversation in responsiveness.waiting],
            "waiting_count": responsiveness.waiting_count,
        },
        "workload": {
            "people": [
                {
                    "assignee": person.username or None,
                    "by_stage": person.by_stage,
                    "total": person.total,
                }
                for person in workload.people
            ],
            "backlog": [
                {"taken_at": point.taken_at, "open": point.open, "unassigned": point.unassigned}
                for point in workload.backlog
            ],
        },
        "feedback": {
            "opened": feedback.opened,
            "shipped": feedback.shipped,
            "declined": feedback.declined,
            "top": [
                {
                    "id": ticket.ticket_id,
                    "title": ticket.title,
                    "status": ticket.status,
                    "demand": ticket.demand,
                    "told": ticket.told,
                }
                for ticket in feedback.top
            ],
            "told_after_ship": feedback.told_after_ship,
            "to_tell_after_ship": feedback.to_tell_after_ship,
        },
    }


# Feedback ---------------------------------------------------------------------------------


class TicketFilters(Schema):
    status: TicketStatus | None = None
    product_area: Text(100) | None = None
    channel: Channel | None = Field(None, description="Evidence from a conversation on it.")
    language: Text(10) | None = Field(None, description="Evidence in this language: `it`, `en`…")
    q: Text(200) = Field("", description="Every word in the title or the problem.")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=100_000)


class TicketIn(Input):
    title: Text(200, required=True)
    problem: Text(LONG_TEXT) = ""
    product_area: Text(100) = ""
    conversation: Id | None = Field(None, description="Link this conversation as evidence.")
    quote: Text(LONG_TEXT) = ""


class TicketPatch(Input):
    """Only the fields sent change. `owner: null` clears the owner."""

    status: TicketStatus | None = None
    owner: Username | None = None
    title: Text(200, required=True) | None = None
    problem: Text(LONG_TEXT) | None = None
    product_area: Text(100) | None = None
    note: Text(LONG_TEXT) = Field("", description="Why the status changed (history only).")


class EvidenceIn(Input):
    conversation: Id
    quote: Text(LONG_TEXT, required=True)


class MergeIn(Input):
    into: Id = Field(description="The ticket to keep.")


@api.get("/feedback", response={200: TicketPage, **ERRORS}, tags=["feedback"])
def list_tickets(request, filters: Query[TicketFilters]):
    """Tickets by demand (distinct people who asked), then the latest evidence; the board's
    filters. Merged tickets are left out (their evidence counts on the kept ticket)."""
    _viewer(request)
    tickets = queries.ticket_list(
        status=filters.status,
        product_area=filters.product_area,
        channel=filters.channel,
        language=filters.language,
        q=filters.q,
        offset=filters.offset,
        limit=filters.limit + 1,
    )
    more = len(tickets) > filters.limit
    return {
        "items": [_ticket(ticket) for ticket in tickets[: filters.limit]],
        "next_offset": filters.offset + filters.limit if more else None,
    }


@api.post("/feedback", response={201: TicketDetail, **ERRORS}, tags=["feedback"])
def create_ticket(request, payload: TicketIn):
    """Open a ticket; with `conversation`, that conversation becomes its first evidence."""
    ticket = feedback_services.create_ticket(
        actor=request.auth,
        title=payload.title,
        problem=payload.problem,
        product_area=payload.product_area,
        conversation_id=payload.conversation,
        quote=payload.quote,
    )
    return Status(201, _ticket_detail(queries.ticket_detail(ticket.pk)))


@api.get("/feedback/{ticket_id}", response={200: TicketDetail, **ERRORS}, tags=["feedback"])
def get_ticket(request, ticket_id: PathId):
    """One ticket with its evidence (who asked, and whether they were told) and history."""
    _viewer(request)
    return _ticket_detail(queries.ticket_detail(ticket_id))


@api.patch("/feedback/{ticket_id}", response={200: TicketDetail, **ERRORS}, tags=["feedback"])
def update_ticket(request, ticket_id: PathId, payload: TicketPatch):
    """Change a ticket's status (with an optional `note`), owner or text: product team only.

    All the changes sent happen in one transaction, or none does.
    """
    permissions.require_manage_tickets(request.auth)
    sent = payload.model_fields_set
    with transaction.atomic(), _not_found_as("ticket"):
        if payload.status is not None:
            feedback_services.change_ticket_status(
                ticket_id, payload.status, actor=request.auth, note=payload.note
            )
        owner = None
        if payload.owner is not None:
            owner = conversation_services.user_by_username(payload.owner, field="owner")
        feedback_services.update_ticket(
            ticket_id,
            actor=request.auth,
            title=payload.title,
            problem=payload.problem,
            product_area=payload.product_area,
            owner=owner,
            clear_owner="owner" in sent and payload.owner is None,
        )
    return _ticket_detail(queries.ticket_detail(ticket_id))


@api.post(
    "/feedback/{ticket_id}/evidence", response={201: EvidenceOut, **ERRORS}, tags=["feedback"]
)
def link_evidence(request, ticket_id: PathId, payload: EvidenceIn):
    """Link a conversation to the ticket with the quote that shows the need; 409 if linked."""
    with _not_found_as("ticket"):
        link = feedback_services.link_evidence(
            ticket_id, payload.conversation, actor=request.auth, quote=payload.quote
        )
    return Status(201, _evidence(link))


@api.post("/feedback/{ticket_id}/merge", response={200: TicketDetail, **ERRORS}, tags=["feedback"])
def merge_tickets(request, ticket_id: PathId, payload: MergeIn):
    """Merge this duplicate into the ticket `into` (product team only) and return the kept
    ticket: the evidence moves there. 409 when either was already merged; 422 for `into`
    unknown or the same ticket."""
    with _not_found_as("ticket"):
        kept = feedback_services.merge_tickets(ticket_id, payload.into, actor=request.auth)
    return _ticket_detail(queries.ticket_detail(kept.pk))


# Anything else under /api/v1/ is a JSON 404, not the site's HTML page. Registered last.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _no_such_address() -> Http404:
    return Http404(_("There is no such API address: see the documentation at /api/v1/docs."))


@api.api_operation(ALL_METHODS, "/", auth=None, include_in_schema=False)
def api_root(request):
    raise _no_such_address()


@api.api_operation(ALL_METHODS, "/{path:unknown}", auth=None, include_in_schema=False)
def unknown_path(request, unknown: str):
    raise _no_such_address()


__all__ = ["api"]
