"""One conversation: the page, and one small view per action on it.

Each action view parses one form, calls one service and answers 303 back to the page
with a message. Input the form rejects (or the service calls invalid) re-renders the page
with the form still filled in; a refusal of the cycle, a conflict or a version clash
redirects, so the person sees the current state next to the message.

In react, creating a ticket, linking one or recording "no product change needed" moves the
conversation on to sell at once (engage.services.reaction): the page says both what was
recorded and "Moved to sell.". Elsewhere the reaction is recorded and the stage stays.
"""

from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from engage import forms, permissions, queries, workflow
from engage.choices import Stage
from engage.errors import EngageError, InvalidInput
from engage.forms.conversation import SEARCH_MAX_LENGTH, LinkTicketForm, first_sentence
from engage.models import Conversation
from engage.services import conversations as conversation_services
from engage.services import merge as merge_services
from engage.services import presence as presence_services
from engage.services import reaction as reaction_services
from engage.services import tags as tag_services
from engage.views.responses import HttpResponseSeeOther, viewer_required, worker_required


def cycle_outlook(conversation: Conversation) -> dict:
    """The four steps with the current one marked, the next step and what it still needs."""
    target, needs = workflow.advance_outlook(queries.detail_facts(conversation))
    here = workflow.ORDER.index(Stage(conversation.stage))
    steps = [
        {"label": stage.label, "done": i < here, "current": i == here}
        for i, stage in enumerate(workflow.ORDER)
    ]
    return {"steps": steps, "next": target, "needs": needs}


def action_forms(conversation: Conversation, bound: dict, *, ticket_q: str = "") -> dict:
    """Every action form of the page, fresh, except the one being re-shown with its errors."""
    version = {"version": conversation.version}
    quote = first_sentence(conversation.text)
    managers = queries.community_managers()
    fresh = {
        "advance": lambda: forms.AdvanceForm(initial=version),
        "restart": lambda: forms.RestartForm(initial=version),
        "assign": lambda: forms.AssignForm(initial=version, managers=managers),
        "reply": forms.ReplyForm,
        "note": forms.NoteForm,
        "no_change": forms.NoChangeForm,
        "ticket": forms.CreateTicketForm,
        "link": lambda: LinkTicketForm(initial={"quote": quote, "ticket_q": ticket_q}),
        "suggested": lambda: LinkTicketForm(suggested=True, initial={"quote": quote}),
        "priority": lambda: forms.PriorityForm(
            initial={**version, "priority": conversation.priority_key}
        ),
        "tags": forms.TagsForm,
        "merge": lambda: forms.MergeForm(initial=version),
        "state": lambda: forms.StateForm(
            initial={
                **version,
                "state": conversation.state,
                "snoozed_until": conversation.snoozed_until,
            }
        ),
    }
    return {name: bound[name] if name in bound else make() for name, make in fresh.items()}


def conversation_page(request, conversation_id: int, *, bound: dict | None = None, status=200):
    try:
        conversation = queries.conversation_detail(conversation_id)
    except Conversation.DoesNotExist:
        raise Http404(_("There is no conversation %(id)s.") % {"id": conversation_id}) from None
    can_work = permissions.can_work(request.user)
    bound = bound or {}
    ticket_q = searched_tickets(request, bound) if can_work else ""
    presence_services.touch(conversation.pk, user=request.user)
    context = {
        "conversation": conversation,
        "conversation_id": conversation.pk,
        "seen_version": conversation.version,
        "cycle": cycle_outlook(conversation),
        "others": queries.contact_conversations(conversation),
        "present": queries.present_users(conversation.pk, exclude_user=request.user),
        "can_work": can_work,
        "now": timezone.now(),
        "forms": action_forms(conversation, bound, ticket_q=ticket_q) if can_work else {},
        "follow_up_news": queries.follow_up_news(conversation),
        # Only those who work conversations link them, so only they get these (one query each).
        "similar_tickets": queries.similar_tickets(conversation) if can_work else [],
        "ticket_q": ticket_q,
        "ticket_results": queries.ticket_search(ticket_q) if ticket_q else [],
        "tag_suggestions": queries.tag_suggestions() if can_work else [],
        "saved_replies": queries.saved_replies_for(conversation.language) if can_work else [],
    }
    return render(request, "engage/conversation.html", context, status=status)


def searched_tickets(request, bound: dict) -> str:
    """The ticket search of the page: `?ticket_q=` (the form without JavaScript), or the one
    a link form re-shown with its errors came from."""
    if "link" in bound:
        text = bound["link"].data.get("ticket_q", "")
    else:
        text = request.GET.get("ticket_q", "")
    return text.strip()[:SEARCH_MAX_LENGTH]


@viewer_required
def conversation_detail(request, pk: int):
    return conversation_page(request, pk)


@require_GET
@viewer_required
def ticket_search(request, pk: int):
    """The tickets matching a search, listed in the page's link form (an htmx fragment).

    Without htmx the search is the page itself with `?ticket_q=`, so this sends it there.
    """
    permissions.require_work(request.user)
    ticket_q = request.GET.get("ticket_q", "").strip()[:SEARCH_MAX_LENGTH]
    if not request.htmx:
        query = f"?{urlencode({'ticket_q': ticket_q})}" if ticket_q else ""
        return HttpResponseRedirect(reverse("conversation", args=[pk]) + query + "#link-ticket")
    if queries.conversation_version(pk) is None:
        raise Http404(_("There is no conversation %(id)s.") % {"id": pk})
    context = {
        "conversation_id": pk,
        "ticket_q": ticket_q,
        "ticket_results": queries.ticket_search(ticket_q),
        "forms": {"link": LinkTicketForm()},
    }
    return render(request, "engage/conversation.html#ticket_results", context)


def act(
    request, pk: int, form, call: Callable, success: Callable[..., str | list[tuple[int, str]]]
):
    """Validate `form`, call the service with its data, answer 303 back with a message (or
    several, as (level, text) pairs)."""
    if form.is_valid():
        try:
            result = call(form.cleaned_data)
        except InvalidInput as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        except EngageError as error:
            messages.error(request, error.message)
            return HttpResponseSeeOther(reverse("conversation", args=[pk]))
        else:
            said = success(result)
            for level, text in [(messages.SUCCESS, said)] if isinstance(said, str) else said:
                messages.add_message(request, level, text)
            return HttpResponseSeeOther(reverse("conversation", args=[pk]))
    return conversation_page(request, pk, bound={form.name: form}, status=422)


def reaction_messages(reaction: reaction_services.Reaction, done: str) -> list[tuple[int, str]]:
    """What a reaction did, then where the cycle went: on to sell, or why it stayed."""
    said = [(messages.SUCCESS, done)]
    if reaction.moved_on is not None:
        stage = workflow.stage_label(reaction.moved_on.stage)
        said.append((messages.SUCCESS, _("Moved to %(stage)s.") % {"stage": stage}))
    elif reaction.stays_because:
        said.append((messages.WARNING, reaction.stays_because))
    return said


@worker_required
def advance(request, pk: int):
    return act(
        request,
        pk,
        forms.AdvanceForm(request.POST),
        lambda data: conversation_services.advance(
            pk, actor=request.user, expected_version=data["version"]
        ),
        lambda c: _("Moved to %(stage)s.") % {"stage": workflow.stage_label(c.stage)},
    )


@worker_required
def restart(request, pk: int):
    return act(
        request,
        pk,
        forms.RestartForm(request.POST),
        lambda data: conversation_services.restart(
            pk, actor=request.user, reason=data["reason"], expected_version=data["version"]
        ),
        lambda c: _("Back to listen: cycle %(cycle)s begins.") % {"cycle": c.cycle},
    )


@worker_required
def assign(request, pk: int):
    form = forms.AssignForm(request.POST, actor=request.user, managers=queries.community_managers())
    return act(
        request,
        pk,
        form,
        lambda data: conversation_services.assign(
            pk, data["user"], actor=request.user, expected_version=data["version"]
        ),
        lambda c: (
            _("Assigned to %(user)s.") % {"user": c.assignee.get_username()}
            if c.assignee
            else _("Nobody is assigned now.")
        ),
    )


@worker_required
def reply(request, pk: int):
    return act(
        request,
        pk,
        forms.ReplyForm(request.POST),
        lambda data: conversation_services.log_reply(
            pk, actor=request.user, text=data["text"], url=data["url"]
        ),
        lambda _message: _("Reply logged."),
    )


@worker_required
def note(request, pk: int):
    return act(
        request,
        pk,
        forms.NoteForm(request.POST),
        lambda data: conversation_services.add_note(pk, actor=request.user, text=data["text"]),
        lambda _note: _("Note added."),
    )


@worker_required
def no_change(request, pk: int):
    return act(
        request,
        pk,
        forms.NoChangeForm(request.POST),
        lambda data: reaction_services.record_no_change(
            pk, actor=request.user, reason=data["reason"]
        ),
        lambda reaction: reaction_messages(
            reaction, _("Recorded that no product change is needed in this cycle.")
        ),
    )


@worker_required
def create_ticket(request, pk: int):
    return act(
        request,
        pk,
        forms.CreateTicketForm(request.POST),
        lambda data: reaction_services.create_ticket(pk, actor=request.user, **data),
        lambda reaction: reaction_messages(
            reaction,
            _("Ticket “%(title)s” created with this conversation as evidence.")
            % {"title": reaction.result.title},
        ),
    )


@worker_required
def link_ticket(request, pk: int):
    return act(
        request,
        pk,
        LinkTicketForm.from_post(request.POST),
        lambda data: reaction_services.link_evidence(
            data["ticket"], pk, actor=request.user, quote=data["quote"]
        ),
        lambda reaction: reaction_messages(
            reaction, _("Linked to ticket “%(title)s”.") % {"title": reaction.result.ticket.title}
        ),
    )


@worker_required
def priority(request, pk: int):
    return act(
        request,
        pk,
        forms.PriorityForm(request.POST),
        lambda data: conversation_services.set_priority(
            pk, data["priority"], actor=request.user, expected_version=data["version"]
        ),
        lambda c: (
            _("Priority is now %(priority)s.") % {"priority": str(c.get_priority_display()).lower()}
        ),
    )


@worker_required
def state(request, pk: int):
    return act(
        request,
        pk,
        forms.StateForm(request.POST),
        lambda data: conversation_services.set_state(
            pk,
            data["state"],
            actor=request.user,
            snoozed_until=data["snoozed_until"],
            expected_version=data["version"],
        ),
        lambda c: (
            _("The conversation is now %(state)s.") % {"state": str(c.get_state_display()).lower()}
        ),
    )


@worker_required
def tags(request, pk: int):
    return act(
        request,
        pk,
        forms.TagsForm(request.POST),
        lambda data: tag_services.change_tags(
            pk, actor=request.user, add=data["add"], remove=[data["remove"]]
        ),
        lambda names: (
            _("Tags: %(tags)s.") % {"tags": ", ".join(names)} if names else _("No tags now.")
        ),
    )


@worker_required
def merge(request, pk: int):
    form = forms.MergeForm(request.POST)
    if form.is_valid():
        try:
            kept = merge_services.merge(
                pk,
                form.cleaned_data["into"],
                actor=request.user,
                expected_version=form.cleaned_data["version"],
            )
        except InvalidInput as error:
            form.add_error("into", error.message)
        except EngageError as error:
            messages.error(request, error.message)
            return HttpResponseSeeOther(reverse("conversation", args=[pk]))
        else:
            messages.success(
                request,
                _("Conversation #%(duplicate)s was merged into this one.") % {"duplicate": pk},
            )
            return HttpResponseSeeOther(reverse("conversation", args=[kept.pk]))
    return conversation_page(request, pk, bound={form.name: form}, status=422)


@require_POST
@viewer_required
def presence(request, pk: int):
    """Heartbeat of an open conversation page: who else is here, and has it changed since?"""
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        version = None
    current = queries.conversation_version(pk)
    if current is None:
        raise Http404(_("There is no conversation %(id)s.") % {"id": pk})
    presence_services.touch(pk, user=request.user)
    context = {
        "conversation_id": pk,
        "seen_version": version,
        "present": queries.present_users(pk, exclude_user=request.user),
        "changed": version is not None and current.version != version,
        "changed_by": current.changed_by,
    }
    return render(request, "engage/conversation.html#presence", context)


urlpatterns = [
    path("conversations/<int:pk>/", conversation_detail, name="conversation"),
    path("conversations/<int:pk>/advance/", advance, name="conversation_advance"),
    path("conversations/<int:pk>/restart/", restart, name="conversation_restart"),
    path("conversations/<int:pk>/assign/", assign, name="conversation_assign"),
    path("conversations/<int:pk>/reply/", reply, name="conversation_reply"),
    path("conversations/<int:pk>/notes/", note, name="conversation_note"),
    path("conversations/<int:pk>/no-change/", no_change, name="conversation_no_change"),
    path("conversations/<int:pk>/tickets/new/", create_ticket, name="conversation_create_ticket"),
    path("conversations/<int:pk>/tickets/link/", link_ticket, name="conversation_link_ticket"),
    path(
        "conversations/<int:pk>/tickets/search/", ticket_search, name="conversation_ticket_search"
    ),
    path("conversations/<int:pk>/priority/", priority, name="conversation_priority"),
    path("conversations/<int:pk>/state/", state, name="conversation_state"),
    path("conversations/<int:pk>/tags/", tags, name="conversation_tags"),
    path("conversations/<int:pk>/merge/", merge, name="conversation_merge"),
    path("conversations/<int:pk>/presence/", presence, name="conversation_presence"),
]
