"""The first-response targets page (/targets/, issue 6): how soon each priority's first
answer is due, when the SLA job starts warning, and who last changed it. Everyone with a
role reads it; staff change a target with the form on its row (a POST to the same address),
through engage.services.targets.set_target, which also moves the due time of every
conversation still waiting at that priority. The SLA job (engage.services.sla) flags them
against the new due times on its next run, within a minute.
"""

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from engage import permissions
from engage.choices import Priority
from engage.errors import InvalidInput
from engage.models import ResponseTarget
from engage.services import sla
from engage.services import targets as services
from engage.views.responses import HttpResponseSeeOther, viewer_required

# Most urgent first, as the queue's priority sort shows them.
ORDER = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)


def _number_input():
    # Text, not type=number: the stylesheet styles text inputs, and the field checks it.
    return forms.TextInput(attrs={"inputmode": "numeric", "size": 5})


class TargetForm(forms.Form):
    """One priority's target as hours and minutes (or only minutes: 90 is 1 h 30 min).
    The form checks the shape; the service owns the range (1 minute to 7 days)."""

    priority = forms.ChoiceField(
        choices=[(priority.key, priority.label) for priority in ORDER],
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": gettext_lazy("Choose one of the four priorities.")},
    )
    hours = forms.IntegerField(
        label=gettext_lazy("Hours"),
        required=False,
        min_value=0,
        widget=_number_input(),
        error_messages={
            "invalid": gettext_lazy("Enter a whole number of hours."),
            "min_value": gettext_lazy("Enter a whole number of hours."),
        },
    )
    minutes = forms.IntegerField(
        label=gettext_lazy("Minutes"),
        required=False,
        min_value=0,
        widget=_number_input(),
        help_text=gettext_lazy("Or only minutes: 90 is 1 hour 30 minutes."),
        error_messages={
            "invalid": gettext_lazy("Enter a whole number of minutes."),
            "min_value": gettext_lazy("Enter a whole number of minutes."),
        },
    )

    def __init__(self, *args, key: str, **kwargs):
        # One form per row on one page: the ids must differ, the names stay the same.
        super().__init__(*args, auto_id=f"target-{key}-%s", **kwargs)

    @classmethod
    def for_target(cls, priority: Priority, minutes: int) -> "TargetForm":
        hours, rest = divmod(minutes, 60)
        initial = {"priority": priority.key, "hours": hours, "minutes": rest}
        return cls(key=priority.key, initial=initial)

    def clean(self):
        data = super().clean()
        if (
            "hours" not in self.errors
            and "minutes" not in self.errors
            and data.get("hours") is None
            and data.get("minutes") is None
        ):
            raise forms.ValidationError(_("Enter hours, minutes or both."))
        return data

    @property
    def total_minutes(self) -> int:
        return (self.cleaned_data.get("hours") or 0) * 60 + (self.cleaned_data.get("minutes") or 0)


# Reading -----------------------------------------------------------------------------------


def duration(minutes: int) -> str:
    """ "1 hour", "4 hours", "1 hour 30 minutes", "45 minutes"."""
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(ngettext("%(count)s hour", "%(count)s hours", hours) % {"count": hours})
    if rest or not hours:
        parts.append(ngettext("%(count)s minute", "%(count)s minutes", rest) % {"count": rest})
    return " ".join(parts)


@dataclass(frozen=True)
class Row:
    """A priority's target as the page shows it, with its stored row (None when there is
    none: the settings' default applies) and, for staff, the form that changes it."""

    priority: Priority
    minutes: int
    default_minutes: int
    stored: ResponseTarget | None
    form: TargetForm | None

    @property
    def is_default(self) -> bool:
        """Never changed by anyone: the row the migration seeded (or none), at the default."""
        unchanged = self.stored is None or self.stored.updated_by_id is None
        return unchanged and self.minutes == self.default_minutes

    @property
    def key(self) -> str:
        return self.priority.key

    @property
    def within(self) -> str:
        return duration(self.minutes)

    @property
    def warned(self) -> str:
        window = sla.warning_window(timedelta(minutes=self.minutes))
        return duration(int(window.total_seconds() // 60))


def stored_targets() -> dict[int, ResponseTarget]:
    """The targets staff set, with who set them: one query."""
    return {
        target.priority: target for target in ResponseTarget.objects.select_related("updated_by")
    }


def target_rows(*, is_staff: bool, failed: TargetForm | None = None) -> list[Row]:
    """The four priorities, most urgent first; a stored target wins over the default."""
    stored = stored_targets()
    defaults = settings.ENGAGE_FIRST_RESPONSE_HOURS
    rows = []
    for priority in ORDER:
        target = stored.get(priority.value)
        default = round(defaults[priority.key] * 60)
        minutes = target.minutes if target else default
        form = None
        if is_staff:
            mine = failed is not None and failed.data.get("priority") == priority.key
            form = failed if mine else TargetForm.for_target(priority, minutes)
        rows.append(Row(priority, minutes, default, target, form))
    return rows


def list_page(request, *, failed: TargetForm | None = None, status: int = 200):
    is_staff = permissions.is_staff(request.user)
    rows = target_rows(is_staff=is_staff, failed=failed)
    # A form that matches no row (a priority that does not exist) shows its errors on top.
    unmatched = (
        failed if failed is not None and all(row.form is not failed for row in rows) else None
    )
    context = {
        "rows": rows,
        "is_staff": is_staff,
        "unmatched": unmatched,
        "warning_share": round(sla.WARNING_SHARE * 100),
        "warning_minimum": duration(int(sla.WARNING_MINIMUM.total_seconds() // 60)),
    }
    return render(request, "engage/targets.html", context, status=status)


# Writing -----------------------------------------------------------------------------------


def save(request):
    """Staff change one priority's target; back to its row with a message (303), or the
    page again with the errors on that row's form (422)."""
    permissions.require(permissions.is_staff(request.user), _("Only staff can change targets."))
    form = TargetForm(request.POST, key=str(request.POST.get("priority", ""))[:20])
    if form.is_valid():
        priority = Priority.from_key(form.cleaned_data["priority"])
        minutes = form.total_minutes
        url = reverse("targets") + f"#target-{priority.key}"
        current = services.response_targets()[priority.value]
        if current.total_seconds() == minutes * 60:
            messages.info(request, _("Nothing changed."))
            return HttpResponseSeeOther(url)
        try:
            services.set_target(priority.value, actor=request.user, minutes=minutes)
        except InvalidInput as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(
                request,
                _(
                    "%(priority)s conversations are now due within %(within)s; those still "
                    "waiting for a first answer were given their new due time."
                )
                % {"priority": priority.label, "within": duration(minutes)},
            )
            return HttpResponseSeeOther(url)
    return list_page(request, failed=form, status=422)


@viewer_required
@require_http_methods(["GET", "HEAD", "POST"])
def targets(request):
    if request.method == "POST":
        return save(request)
    return list_page(request)


urlpatterns = [
    path("targets/", targets, name="targets"),
]
