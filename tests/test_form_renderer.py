"""engage.forms.renderer draws inputs, selects, options and labels in Python: the same HTML,
byte for byte, as Django's own templates, for every widget and value the project's forms
use and the awkward ones they might."""

from pathlib import Path

import django
import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy, override

from engage.forms import renderer
from engage.forms.renderer import FastTemplates

FAST, DJANGO = FastTemplates(), DjangoTemplates()


class EveryWidget(forms.Form):
    text = forms.CharField(
        label=mark_safe("Safe <em>label</em>"),  # noqa: S308 - a test value
        widget=forms.TextInput(attrs={"size": 10, "required": True, "hidden": False, "x": 0}),
    )
    search = forms.CharField(
        label='Words & "quotes" <b>',
        widget=forms.SearchInput(attrs={"placeholder": 'a "b" <c> & d', "data-x": None}),
    )
    hidden = forms.CharField(widget=forms.HiddenInput)
    number = forms.IntegerField(label=gettext_lazy("Priority"))
    email = forms.EmailField()
    url = forms.URLField()
    password = forms.CharField(widget=forms.PasswordInput(render_value=True))
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    when = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    time = forms.TimeField()
    checked = forms.BooleanField(label="Overdue only")
    unchecked = forms.BooleanField(label="Other")
    upload = forms.FileField()
    choice = forms.ChoiceField(
        choices=[("", "Any"), ("a&b", "A & B"), ("<x>", mark_safe("<i>safe</i>")), (3, 3)]  # noqa: S308
    )
    grouped = forms.ChoiceField(
        choices=[("", "—"), ("Fruit", [("apple", "Apple"), ("pear", 'Pear "x"')]), ("z", "Z")]
    )
    many = forms.MultipleChoiceField(choices=[("a", "A"), ("b", "B"), ("c", "C")])
    lazy = forms.ChoiceField(
        choices=[("open", gettext_lazy("Open")), ("closed", gettext_lazy("Closed"))]
    )
    radio = forms.ChoiceField(choices=[("a", "A"), ("b", "B")], widget=forms.RadioSelect)
    notes = forms.CharField(widget=forms.Textarea)


BOUND = {
    "text": "<script>alert(1)</script>",
    "search": "a & b",
    "hidden": '"quoted"',
    "number": "1234567",
    "email": "x@example.com",
    "url": "https://example.com/?a=1&b=2",
    "password": "secret",
    "date": "2026-11-22",
    "when": "2026-11-22T10:00",
    "time": "10:00",
    "checked": "on",
    "choice": "a&b",
    "grouped": "pear",
    "many": ["a", "c"],
    "lazy": "closed",
    "radio": "b",
    "notes": "line\n<b>",
}


def drawn(form, renderer) -> list[str]:
    form.renderer = renderer
    return [
        str(part)
        for field in form
        for part in (field.label_tag(), field.label_tag(attrs={"class": "x"}), field, field.errors)
    ]


@pytest.mark.parametrize("language", ["en", "it"])
@pytest.mark.parametrize("data", [None, BOUND, {"choice": "nope", "number": "x"}])
def test_every_widget_is_drawn_as_djangos_templates_draw_it(data, language):
    with override(language):
        ours = drawn(EveryWidget(data), FAST)
        theirs = drawn(EveryWidget(data), DJANGO)

    assert ours == theirs
    assert any("<select" in html for html in ours)
    assert any("<option" in html for html in ours)


def test_the_queue_and_bulk_forms_draw_as_with_djangos_renderer(db):
    from engage import queries
    from engage.forms import BulkActionForm, QueueFilterForm

    managers = queries.community_managers()
    for form_class, data in [
        (QueueFilterForm, {"state": "open", "channel": "twitter", "overdue": "on", "q": "<b>"}),
        (BulkActionForm, {"action": "assign", "ids": ["1"], "priority": "high"}),
    ]:
        for bound in (None, data):
            ours = drawn(form_class(bound, managers=managers), FAST)
            theirs = drawn(form_class(bound, managers=managers), DJANGO)
            assert ours == theirs


def test_the_templates_written_out_are_still_what_django_ships():
    """An upgrade of Django that changes one of them must be looked at here."""
    templates = Path(django.__file__).parent / "forms" / "templates"
    include = '{% include "django/forms/widgets/input.html" %}'
    for name in renderer.INPUTS - {renderer.WIDGETS + "input.html"}:
        assert (templates / name).read_text().strip() == include, name
    assert (templates / renderer.WIDGETS / "input.html").read_text().strip() == (
        '<input type="{{ widget.type }}" name="{{ widget.name }}"{% if widget.value != None %}'
        " value=\"{{ widget.value|stringformat:'s' }}\"{% endif %}"
        '{% include "django/forms/widgets/attrs.html" %}>'
    )
    assert (templates / renderer.OPTION).read_text().strip() == (
        "<option value=\"{{ widget.value|stringformat:'s' }}\""
        '{% include "django/forms/widgets/attrs.html" %}>{{ widget.label }}</option>'
    )
