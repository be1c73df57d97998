"""The Django admin for staff. Every write on the domain goes through a service.

Configuration (contacts, tags, teams, availability, routing rules) is edited directly.
Sources, conversations, tickets and tokens change only through actions and saves that call
engage.services, with the staff member as the actor; the history (events), messages, notes
and evidence are read-only, and so is a source's polling health.
Changelists of the big tables run a fixed number of queries and never count millions of
rows exactly (see CappedCountPaginator).
"""

import json
from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, Q, Subquery
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard as RqDashboard

from engage import queries
from engage.choices import CLOSED_TICKET_STATUSES, Priority, Role, SourceKind, TicketStatus
from engage.errors import EngageError
from engage.models import (
    FUNNEL_RECORD,
    ApiToken,
    Availability,
    Contact,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Note,
    Notification,
    ResponseTarget,
    RoutingRule,
    Source,
    Tag,
    Team,
)
from engage.services import bulk as bulk_services
from engage.services import conversations as conversation_services
from engage.services import feedback as feedback_services
from engage.services import sources as source_services
from engage.services import targets as target_services
from engage.services import tokens as token_services

User = get_user_model()

admin.site.site_header = _("engage administration")
admin.site.site_title = _("engage admin")

# An action over more rows than this is refused: each row is its own transaction.
ACTION_LIMIT = 500
# At most this many errors are listed one by one after an action; the rest are counted.
ERRORS_SHOWN = 20
# Rows shown inline on a change page; the rest are one link away.
INLINE_LIMIT = 50


class CappedCountPaginator(Paginator):
    """Counts exactly up to CAP rows, then estimates, so a page of a million rows stays cheap.

    An exact COUNT(*) grows with the rows that match (~25 ms per 200,000 on PostgreSQL).
    Past the cap PostgreSQL's planner estimate is used (one EXPLAIN, no scan); other
    databases, which hold demo-sized data, count exactly.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()
        capped = queryset[: self.CAP + 1].count()
        if capped <= self.CAP:
            return capped
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return queryset.count()
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            # The SQL is Django's own compiled query; the values stay parameters.
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)  # noqa: S608
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return max(int(plan[0]["Plan"]["Plan Rows"]), self.CAP + 1)


def _error_text(error: Exception) -> str:
    if isinstance(error, EngageError):
        return error.message
    return str(error) or str(_("Your role does not allow this."))


def _change_link(model, pk, label=None):
    if pk is None:
        return "—"
    url = reverse(f"admin:engage_{model._meta.model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else f"#{pk}")


def _short(text: str, length: int = 80) -> str:
    return Truncator(text).chars(length)


def _when(value) -> str:
    return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")


class ServiceAdmin(admin.ModelAdmin):
    """Saves and actions that call a service; a refusal becomes a message, never a 500."""

    def call_service(self, request, call: Callable[[], object]) -> bool:
        try:
            call()
        except (EngageError, PermissionDenied) as error:
            request._engage_refused = True
            self.message_user(request, _error_text(error), messages.ERROR)
            return False
        return True

    def run_per_row(self, request, queryset, call: Callable[[int], object], done: str) -> None:
        """Call `call(pk)` for each selected row, each in its own service transaction.

        `done` is a message with %(ids)s; every refusal is reported with its row.
        """
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: ACTION_LIMIT + 1])
        if len(ids) > ACTION_LIMIT:
            self.message_user(
                request,
                _("Select at most %(limit)s rows for this action.") % {"limit": ACTION_LIMIT},
                messages.ERROR,
            )
            return
        succeeded, failed = [], []
        for pk in ids:
            try:
                call(pk)
            except (EngageError, PermissionDenied) as error:
                failed.append((pk, _error_text(error)))
            else:
                succeeded.append(pk)
        self.report(request, succeeded, failed, done)

    def report(self, request, succeeded: list[int], failed: list[tuple[int, str]], done: str):
        """One message for the rows done (`done` has %(ids)s), one per refusal with its row."""
        if succeeded:
            ids_text = ", ".join(f"#{pk}" for pk in succeeded)
            self.message_user(request, done % {"ids": ids_text}, messages.SUCCESS)
        for pk, text in failed[:ERRORS_SHOWN]:
            self.message_user(request, f"#{pk}: {text}", messages.ERROR)
        if len(failed) > ERRORS_SHOWN:
            self.message_user(
                request,
                _("… and %(count)s more refused.") % {"count": len(failed) - ERRORS_SHOWN},
                messages.ERROR,
            )

    def save_related(self, request, form, formsets, change):
        # Inlines are read-only and nothing many-to-many is editable: writing them here
        # would bypass the services.
        pass

    def construct_change_message(self, request, form, formsets, add=False):
        # The read-only inlines were never saved, so they changed nothing to report.
        return super().construct_change_message(request, form, [], add)

    def log_addition(self, request, obj, message):
        if not getattr(request, "_engage_refused", False):
            return super().log_addition(request, obj, message)
        return None

    def log_change(self, request, obj, message):
        if not getattr(request, "_engage_refused", False):
            return super().log_change(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_engage_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "_engage_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never added, changed or deleted here."""

    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(description=Conversation._meta.verbose_name, ordering="conversation_id")
    def conversation_link(self, obj):
        return _change_link(Conversation, obj.conversation_id)

    @admin.display(description=_("ticket"), ordering="ticket_id")
    def ticket_link(self, obj):
        return _change_link(FeedbackTicket, obj.ticket_id)

    @admin.display(description=_("text"))
    def short_text(self, obj):
        return _short(obj.text)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class NumberSearchAdmin(ReadOnlyAdmin):
    """Searched by conversation (or ticket) number, through their indexes.

    The admin's own "=field" search compares text (UPPER(id::text)), which no index serves.
    """

    search_fields = ("conversation__id",)  # shows the search box; the lookup is below
    search_help_text = _("A conversation number.")
    number_fields: tuple[str, ...] = ("conversation_id",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().removeprefix("#")
        if not term:
            return queryset, False
        if not term.isdigit():
            return queryset.none(), False
        matches = Q()
        for name in self.number_fields:
            matches |= Q(**{name: int(term)})
        return queryset.filter(matches), False


class ReadOnlyInline(admin.TabularInline):
    """The latest INLINE_LIMIT rows of a parent, read-only."""

    extra = 0
    can_delete = False
    show_change_link = True
    parent_field = "conversation"
    order_by: tuple[str, ...] = ("-id",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        try:
            parent_id = int(match.kwargs["object_id"]) if match else None
        except (KeyError, TypeError, ValueError):
            parent_id = None
        if parent_id is None:
            return queryset.none()
        latest = (
            self.model.objects.filter(**{f"{self.parent_field}_id": parent_id})
            .order_by(*self.order_by)
            .values("pk")[:INLINE_LIMIT]
        )
        return queryset.filter(pk__in=Subquery(latest))


# Sources: saved and changed through engage.services.sources.


SOURCE_FIELDS = ("name", "url", "channel", "keywords", "poll_interval_minutes")
SOURCE_HEALTH = (
    "last_polled_at",
    "last_success_at",
    "last_error",
    "last_error_at",
    "failures",
    "items_added_last",
    "items_added_total",
    "next_poll_at",
)


@admin.register(Source)
class SourceAdmin(ServiceAdmin):
    """Feeds are added and changed through engage.services.sources (its checks: http(s)
    addresses, unique names); pausing, resuming, removing, restoring and polling are actions.
    The polling health is read-only: only the poller writes it."""

    list_display = (
        "name",
        "kind",
        "channel",
        "health",
        "last_polled_at",
        "last_success_at",
        "failures",
        "items_added_last",
        "items_added_total",
        "next_poll_at",
        "is_active",
        "removed_at",
    )
    list_filter = ("kind", "channel", "is_active", ("removed_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "keywords", "url")
    ordering = ("name",)
    actions = ("pause", "resume", "poll_now", "remove_sources", "restore_sources")
    fieldsets = (
        (None, {"fields": ("kind", *SOURCE_FIELDS)}),
        (_("State"), {"fields": ("is_active", "removed_at", "created_at")}),
        (_("Polling health"), {"fields": SOURCE_HEALTH}),
    )
    add_fieldsets = ((None, {"fields": SOURCE_FIELDS}),)

    def get_fieldsets(self, request, obj=None):
        # Only feeds are added here: API and file sources are created by what they bring.
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("kind", "is_active", "removed_at", "created_at", *SOURCE_HEALTH)

    def has_delete_permission(self, request, obj=None):
        # Conversations keep their source: remove it instead (the "Remove" action).
        return False

    @admin.display(description=_("health"))
    def health(self, obj):
        if obj.removed_at is not None:
            return _("removed")
        if not obj.is_active:
            return _("paused")
        if obj.kind != SourceKind.FEED:
            return "—"
        if obj.failures:
            return ngettext("failing once", "failing %(count)s times", obj.failures) % {
                "count": obj.failures
            }
        if obj.last_polled_at is None:
            return _("never polled")
        return _("OK")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:

            def create():
                source = source_services.add_feed(
                    actor=request.user, **{name: data[name] for name in SOURCE_FIELDS}
                )
                # The admin goes on with `obj` (history entry, redirect): make it the stored row.
                obj.pk = source.pk
                obj._state.adding = False
                obj._state.db = source._state.db

            self.call_service(request, create)
            return
        changed = {name: data[name] for name in SOURCE_FIELDS if name in form.changed_data}
        if changed:
            self.call_service(
                request,
                lambda: source_services.update_source(obj.pk, actor=request.user, **changed),
            )

    @admin.action(description=_("Pause"), permissions=["change"])
    def pause(self, request, queryset):
        self.run_per_row(
            request,
            queryset,
            lambda pk: source_services.set_active(pk, actor=request.user, active=False),
            _("Paused: %(ids)s."),
        )

    @admin.action(description=_("Resume"), permissions=["change"])
    def resume(self, request, queryset):
        self.run_per_row(
            request,
            queryset,
            lambda pk: source_services.set_active(pk, actor=request.user, active=True),
            _("Resumed: %(ids)s."),
        )

    @admin.action(description=_("Poll now"), permissions=["change"])
    def poll_now(self, request, queryset):
        def poll(pk: int):
            source_services.poll_now(pk, actor=request.user)

        self.run_per_row(request, queryset, poll, _("Polling now: %(ids)s."))

    @admin.action(
        description=_("Remove (stop and hide; conversations stay)"), permissions=["change"]
    )
    def remove_sources(self, request, queryset):
        self.run_per_row(
            request,
            queryset,
            lambda pk: source_services.remove(pk, actor=request.user),
            _("Removed: %(ids)s."),
        )

    @admin.action(description=_("Restore (stays paused)"), permissions=["change"])
    def restore_sources(self, request, queryset):
        self.run_per_row(
            request,
            queryset,
            lambda pk: source_services.restore(pk, actor=request.user),
            _("Restored: %(ids)s."),
        )


# Configuration: edited directly.


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("handle", "name", "channel", "profile_url", "created_at")
    list_filter = ("channel",)
    search_fields = ("handle", "name")
    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    readonly_fields = ("created_at", "recent_conversations")

    @admin.display(description=_("latest conversations"))
    def recent_conversations(self, obj):
        if obj.pk is None:
            return "—"
        rows = (
            Conversation.objects.filter(contact=obj)
            .order_by("-received_at")
            .only("id", "text", "stage", "received_at")[:20]
        )
        return (
            format_html_join(
                "\n",
                '<div><a href="{}">#{}</a> {} · {} · {}</div>',
                (
                    (
                        reverse("admin:engage_conversation_change", args=[row.pk]),
                        row.pk,
                        _when(row.received_at),
                        row.get_stage_display(),
                        _short(row.text, 100),
                    )
                    for row in rows
                ),
            )
            or "—"
        )


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


# Routing: who gets new conversations. Plain configuration, saved directly.


def _workers():
    """The people round robin and rules may give conversations to: community managers and
    superusers, as engage.services.enrichment chooses them."""
    return (
        User.objects.filter(
            Q(groups__name=Role.COMMUNITY_MANAGER) | Q(is_superuser=True), is_active=True
        )
        .distinct()
        .order_by("username")
    )


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count")
    search_fields = ("name",)
    ordering = ("name",)
    filter_horizontal = ("members",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "members":
            kwargs["queryset"] = _workers()
            kwargs["help_text"] = _(
                "Community managers only. A rule that names this team gives each new "
                "conversation to its available member who waited longest."
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(Availability)
class AvailabilityAdmin(admin.ModelAdmin):
    """Each community manager sets their own state with the toggle in the page header;
    here staff see everyone's, change it, and set a cap of open conversations per person."""

    list_display = ("user", "is_available", "max_open", "last_assigned_at")
    list_editable = ("is_available", "max_open")
    list_filter = ("is_available",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name")
    ordering = ("user__username",)

    def get_readonly_fields(self, request, obj=None):
        # The user is the row's key: it is chosen once.
        return ("user", "last_assigned_at") if obj else ("last_assigned_at",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "max_open":
            kwargs["help_text"] = _(
                "Round robin gives this person no more while they have this many open "
                "conversations. Empty: %(cap)s, the site's default."
            ) % {"cap": settings.ENGAGE_ROUND_ROBIN_CAP}
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = _workers()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


ROUTING_HELP = _(
    "Rules apply to each new conversation once its language is known, in position order. "
    "A rule matches when every condition it sets matches (an empty condition matches all). "
    "Every matching rule adds its tags; the first matching rule that sets a priority sets "
    "it; the first that names an assignee or a team decides who gets the conversation (a "
    "team: its available member who waited longest). When no rule decides, round robin "
    "gives it to the available community manager who waited longest."
)


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "position",
        "name",
        "is_active",
        "source",
        "channel",
        "language",
        "keywords",
        "set_priority",
        "tag_names",
        "assignee",
        "team",
    )
    list_display_links = ("name",)
    list_editable = ("position", "is_active")
    list_filter = ("is_active", "channel", "team")
    list_select_related = ("source", "assignee", "team")
    search_fields = ("name", "keywords")
    ordering = ("position", "id")
    filter_horizontal = ("add_tags",)
    fieldsets = (
        (None, {"fields": ("name", "position", "is_active"), "description": ROUTING_HELP}),
        (
            _("When"),
            {
                "fields": ("source", "channel", "language", "keywords"),
                "description": _("Every condition set must match; an empty one matches all."),
            },
        ),
        (
            _("Then"),
            {
                "fields": ("set_priority", "add_tags", "assignee", "team"),
                "description": _("Assign to a person or to a team, not both."),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("add_tags")

    @admin.display(description=_("add tags"))
    def tag_names(self, obj):
        return ", ".join(tag.name for tag in obj.add_tags.all()) or "—"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "subtitle": ROUTING_HELP})

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":
            kwargs["help_text"] = _("A language code such as it or en; empty matches all.")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            kwargs["queryset"] = _workers()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# First-response targets: saved through the service, which moves the due times.


@admin.register(ResponseTarget)
class ResponseTargetAdmin(ServiceAdmin):
    """One row per priority that staff changed (the others use the defaults of
    settings.ENGAGE_FIRST_RESPONSE_HOURS). Saving calls engage.services.targets.set_target,
    so conversations still waiting at that priority get their new due time at once; the
    same form is on the /targets/ page."""

    list_display = ("priority", "minutes", "updated_by", "updated_at")
    list_select_related = ("updated_by",)
    ordering = ("-priority",)
    fields = ("priority", "minutes", "updated_by", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # The priority is the row's key: chosen once.
        return ("priority", "updated_by", "updated_at") if obj else ("updated_by", "updated_at")

    def has_delete_permission(self, request, obj=None):
        # Deleting would fall back to the default without moving any due time: change it.
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        priority = obj.priority if change else data["priority"]

        def save():
            target = target_services.set_target(
                priority, actor=request.user, minutes=data["minutes"]
            )
            # The admin goes on with `obj` (history entry, redirect): make it the stored row.
            obj.pk, obj.minutes = target.pk, target.minutes
            obj._state.adding = False
            obj._state.db = target._state.db

        self.call_service(request, save)


# Conversations: read-only fields, changes through actions.


class AssigneeFilter(admin.SimpleListFilter):
    """Me, nobody, or one of the community managers: never a list of every user."""

    title = _("assignee")
    parameter_name = "assignee"
    LIMIT = 50

    def lookups(self, request, model_admin):
        managers = (
            User.objects.filter(groups__name=Role.COMMUNITY_MANAGER, is_active=True)
            .order_by("username")
            .values_list("pk", "username")[: self.LIMIT]
        )
        return [("me", _("Me")), ("none", _("Nobody"))] + [
            (str(pk), username) for pk, username in managers
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("sent_at", "direction", "author_handle", "text", "cycle")
    readonly_fields = fields
    order_by = ("-sent_at", "-id")
    verbose_name_plural = _("latest messages")


class NoteInline(ReadOnlyInline):
    model = Note
    fields = ("created_at", "author", "text")
    readonly_fields = fields
    order_by = ("-created_at", "-id")
    verbose_name_plural = _("latest notes")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


CONVERSATION_FIELDS = (
    "text",
    "url",
    "source",
    "channel",
    "external_id",
    "contact",
    "received_at",
    "language",
    "sentiment",
    "tags",
)
CYCLE_FIELDS = (
    "stage",
    "cycle",
    "stage_entered_at",
    "assignee",
    "state",
    "snoozed_until",
    "needs_follow_up",
    "priority",
    "first_response_due_at",
    "first_response_at",
    "sla_state",
    "version",
)
# The dashboard funnel's record, kept by the services (Conversation.enter_stage).
FUNNEL_FIELDS = FUNNEL_RECORD


@admin.register(Conversation)
class ConversationAdmin(ServiceAdmin):
    list_display = (
        "id",
        "short_text",
        "contact",
        "channel",
        "stage",
        "cycle",
        "state",
        "priority",
        "assignee",
        "first_response_due_at",
        "sla_state",
        "needs_follow_up",
    )
    list_display_links = ("id", "short_text")
    list_filter = (
        "stage",
        "state",
        "priority",
        "sla_state",
        "channel",
        "needs_follow_up",
        AssigneeFilter,
        "source",
    )
    list_select_related = ("contact", "assignee")
    list_per_page = 50
    ordering = ("-id",)
    search_fields = ("text",)
    search_help_text = _("Words of the text, or a conversation number such as #42.")
    show_full_result_count = False
    paginator = CappedCountPaginator
    actions = ("assign_to_me", "unassign", "advance_one_step", "close", "reopen")
    inlines = (MessageInline, NoteInline)
    fieldsets = (
        (None, {"fields": CONVERSATION_FIELDS}),
        (_("Cycle"), {"fields": CYCLE_FIELDS}),
        (_("Funnel"), {"fields": FUNNEL_FIELDS, "classes": ["collapse"]}),
        (_("History"), {"fields": ("related", "history")}),
    )

    def has_add_permission(self, request):
        # Conversations come from ingestion and the API.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Only the priority is editable, and it is saved through set_priority.
        editable = {"priority"}
        return [
            name
            for name in (
                *CONVERSATION_FIELDS,
                *CYCLE_FIELDS,
                *FUNNEL_FIELDS,
                "related",
                "history",
            )
            if name not in editable
        ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source", "contact", "assignee")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        number = term.removeprefix("#")
        if number.isdigit():
            return queryset.filter(pk=int(number)), False
        # The queue's own text search: PostgreSQL full text (indexed), else a substring.
        filters = queries.QueueFilter(q=term)
        return queries.filter_conversations(queryset, filters, user=request.user), False

    @admin.display(description=_("text"), ordering="id")
    def short_text(self, obj):
        return _short(obj.text)

    @admin.display(description=_("more"))
    def related(self, obj):
        links = [
            (
                reverse(f"admin:engage_{model}_changelist") + f"?conversation__id__exact={obj.pk}",
                label,
            )
            for model, label in (
                ("message", _("all messages")),
                ("note", _("all notes")),
                ("event", _("full history")),
                ("feedbacklink", _("feedback evidence")),
            )
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description=_("latest events"))
    def history(self, obj):
        events = obj.events.select_related("actor").order_by("-created_at", "-id")[:30]
        return (
            format_html_join(
                "\n",
                "<div>{} · {} · {} {}</div>",
                (
                    (
                        _when(event.created_at),
                        event.get_kind_display(),
                        event.actor or _("system"),
                        _event_detail(event),
                    )
                    for event in events
                ),
            )
            or "—"
        )

    def save_model(self, request, obj, form, change):
        if change and "priority" in form.changed_data:
            key = Priority(form.cleaned_data["priority"]).key
            self.call_service(
                request,
                lambda: conversation_services.set_priority(obj.pk, key, actor=request.user),
            )

    def run_bulk(self, request, queryset, action, done: str) -> None:
        """The queue's bulk actions (engage.services.bulk) on the selected conversations:
        each row its own transaction, every refusal reported with its row."""
        # One more than the limit, so that bulk refuses an over-large selection by name.
        limit = bulk_services.limit()
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: limit + 1])
        try:
            outcomes = bulk_services.apply(ids, action(), actor=request.user)
        except (EngageError, PermissionDenied) as error:
            self.message_user(request, _error_text(error), messages.ERROR)
            return
        self.report(
            request,
            [outcome.conversation_id for outcome in outcomes if outcome.ok],
            [(outcome.conversation_id, outcome.message) for outcome in outcomes if not outcome.ok],
            done,
        )

    @admin.action(description=_("Assign to me"), permissions=["change"])
    def assign_to_me(self, request, queryset):
        self.run_bulk(
            request,
            queryset,
            lambda: bulk_services.assign(request.user),
            _("Assigned to you: %(ids)s."),
        )

    @admin.action(description=_("Unassign"), permissions=["change"])
    def unassign(self, request, queryset):
        self.run_bulk(
            request,
            queryset,
            lambda: bulk_services.assign(None),
            _("Unassigned: %(ids)s."),
        )

    @admin.action(description=_("Advance one step"), permissions=["change"])
    def advance_one_step(self, request, queryset):
        self.run_bulk(
            request,
            queryset,
            lambda: bulk_services.advance(),
            _("Moved one step on: %(ids)s."),
        )

    @admin.action(description=_("Close"), permissions=["change"])
    def close(self, request, queryset):
        self.run_bulk(
            request,
            queryset,
            lambda: bulk_services.close(),
            _("Closed: %(ids)s."),
        )

    @admin.action(description=_("Reopen"), permissions=["change"])
    def reopen(self, request, queryset):
        self.run_bulk(
            request,
            queryset,
            lambda: bulk_services.reopen(),
            _("Reopened: %(ids)s."),
        )


def _event_detail(event: Event) -> str:
    parts = []
    if event.from_stage or event.to_stage:
        parts.append(f"{event.from_stage or '—'} → {event.to_stage or '—'}")
    if event.reason:
        parts.append(_short(event.reason, 120))
    return " · ".join(parts)


@admin.register(Message)
class MessageAdmin(NumberSearchAdmin):
    list_display = (
        "id",
        "conversation_link",
        "direction",
        "author_handle",
        "short_text",
        "sent_at",
        "cycle",
    )
    list_filter = ("direction",)


@admin.register(Note)
class NoteAdmin(NumberSearchAdmin):
    list_display = ("id", "conversation_link", "author", "short_text", "created_at")
    list_select_related = ("author",)


@admin.register(Event)
class EventAdmin(NumberSearchAdmin):
    """The append-only history: no add, no change, no delete."""

    list_display = (
        "created_at",
        "kind",
        "conversation_link",
        "ticket_link",
        "actor",
        "from_stage",
        "to_stage",
        "cycle",
        "short_reason",
    )
    list_filter = ("kind",)
    list_select_related = ("actor",)
    search_help_text = _("A conversation or ticket number.")
    number_fields = ("conversation_id", "ticket_id")

    @admin.display(description=_("reason"))
    def short_reason(self, obj):
        return _short(obj.reason, 60)


# Feedback: text and owner saved through services, status through actions.


class FeedbackLinkInline(ReadOnlyInline):
    model = FeedbackLink
    parent_field = "ticket"
    fields = ("conversation", "contact", "quote", "cycle", "created_at", "told_at")
    readonly_fields = fields
    verbose_name_plural = _("latest evidence")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("conversation__contact")

    @admin.display(description=_("contact"))
    def contact(self, obj):
        return obj.conversation.contact


def _status_action(status: TicketStatus, description):
    def action(modeladmin, request, queryset):
        modeladmin.change_status(request, queryset, status)

    action.__name__ = f"mark_{status}"
    return admin.action(description=description, permissions=["change"])(action)


def _ticket_owners():
    """Only people who may own a ticket (engage.permissions): the product team and staff."""
    return (
        User.objects.filter(
            Q(groups__name=Role.PRODUCT_TEAM) | Q(is_staff=True) | Q(is_superuser=True),
            is_active=True,
        )
        .distinct()
        .order_by("username")
    )


@admin.register(FeedbackTicket)
class FeedbackTicketAdmin(ServiceAdmin):
    list_display = (
        "title",
        "status",
        "product_area",
        "owner",
        "demand",
        "evidence_count",
        "told_count",
        "status_changed_at",
    )
    list_filter = ("status", "product_area")
    search_fields = ("title", "problem")
    ordering = ("-created_at", "-id")
    fields = (
        "title",
        "problem",
        "product_area",
        "owner",
        "status",
        "status_changed_at",
        "merged_into",
        "created_by",
        "created_at",
        "updated_at",
    )
    # Merging moves evidence and writes history: it happens on the ticket page or the API
    # (services.feedback.merge_tickets), never by editing the field here.
    readonly_fields = (
        "status",
        "status_changed_at",
        "merged_into",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = (FeedbackLinkInline,)
    actions = (
        _status_action(TicketStatus.TRIAGED, _("Mark triaged")),
        _status_action(TicketStatus.PLANNED, _("Mark planned")),
        _status_action(TicketStatus.IN_PROGRESS, _("Mark in progress")),
        _status_action(TicketStatus.SHIPPED, _("Mark shipped (flags follow-ups)")),
        _status_action(TicketStatus.DECLINED, _("Mark declined (flags follow-ups)")),
    )

    def has_delete_permission(self, request, obj=None):
        # A ticket's evidence and history go with it: decline it instead.
        return False

    def get_queryset(self, request):
        return queries.tickets()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner":
            kwargs["queryset"] = _ticket_owners()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("people"), ordering="demand")
    def demand(self, obj):
        return obj.demand

    @admin.display(description=_("evidence"), ordering="evidence_count")
    def evidence_count(self, obj):
        return obj.evidence_count

    @admin.display(description=_("told"), ordering="told_count")
    def told_count(self, obj):
        return obj.told_count

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:

            def create():
                ticket = feedback_services.create_ticket(
                    actor=request.user,
                    title=data["title"],
                    problem=data.get("problem", ""),
                    product_area=data.get("product_area", ""),
                )
                if data.get("owner") is not None:
                    feedback_services.update_ticket(
                        ticket.pk, actor=request.user, owner=data["owner"]
                    )
                # The admin goes on with `obj` (history entry, redirect): make it the stored row.
                obj.pk = ticket.pk
                obj._state.adding = False
                obj._state.db = ticket._state.db

            self.call_service(request, create)
            return
        changed = {
            name: data[name]
            for name in ("title", "problem", "product_area")
            if name in form.changed_data
        }
        owner_changed = "owner" in form.changed_data
        if not changed and not owner_changed:
            return
        self.call_service(
            request,
            lambda: feedback_services.update_ticket(
                obj.pk,
                actor=request.user,
                owner=data.get("owner") if owner_changed else None,
                clear_owner=owner_changed and data.get("owner") is None,
                **changed,
            ),
        )

    def change_status(self, request, queryset, status: TicketStatus) -> None:
        label = TicketStatus(status).label

        def change(pk: int):
            flagged = 0
            if status in CLOSED_TICKET_STATUSES:
                ticket = FeedbackTicket.objects.get(pk=pk)
                if ticket.status != status:
                    flagged = ticket.links.filter(told_at__isnull=True).count()
            feedback_services.change_ticket_status(pk, status, actor=request.user)
            if flagged:
                self.message_user(
                    request,
                    ngettext(
                        "Ticket #%(id)s: %(count)s person to tell.",
                        "Ticket #%(id)s: %(count)s people to tell.",
                        flagged,
                    )
                    % {"id": pk, "count": flagged},
                    messages.INFO,
                )

        self.run_per_row(
            request, queryset, change, _("Now %(status)s: %%(ids)s.") % {"status": label}
        )


@admin.register(FeedbackLink)
class FeedbackLinkAdmin(NumberSearchAdmin):
    list_display = (
        "id",
        "ticket",
        "conversation_link",
        "contact",
        "cycle",
        "created_at",
        "told_at",
    )
    list_filter = (("told_at", admin.EmptyFieldListFilter),)
    list_select_related = ("ticket", "conversation__contact")
    search_help_text = _("A conversation or ticket number.")
    number_fields = ("conversation_id", "ticket_id")

    @admin.display(description=_("contact"))
    def contact(self, obj):
        return obj.conversation.contact


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "text", "conversation_link", "ticket_link", "read_at")
    list_filter = (("read_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user",)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are created by a command and shown once; here they are only listed and revoked."""

    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    ordering = ("-id",)
    # Never the hash.
    fields = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    def has_revoke_permission(self, request):
        return request.user.has_perm("engage.change_apitoken")

    @admin.action(description=_("Revoke"), permissions=["revoke"])
    def revoke(self, request, queryset):
        ids = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for pk in ids:
            token_services.revoke(pk)
        self.message_user(
            request,
            ngettext("%(count)s token revoked.", "%(count)s tokens revoked.", len(ids))
            % {"count": len(ids)},
            messages.SUCCESS,
        )


class JobQueuesAdmin(QueueAdmin):
    """django-rq's queues in the admin (its statistics page and the pages under it). Its
    Dashboard model has no table, so the object pages a ModelAdmin adds for any model
    (/admin/django_rq/dashboard/<id>/change/, /delete/, /history/) failed with a 500: here
    there is no such object, and the admin says so as for any missing one."""

    def get_object(self, request, object_id, from_field=None):
        return None


if admin.site.is_registered(RqDashboard):
    admin.site.unregister(RqDashboard)
    admin.site.register(RqDashboard, JobQueuesAdmin)
