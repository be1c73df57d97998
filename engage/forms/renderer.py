"""The forms' renderer: Django's, with its simplest templates written out in Python.

Django draws every widget, every <option> and every label through the template engine:
about 0.5 ms a field, 8 ms for the queue's filter form alone, more than the page's SQL.
The templates below are each a line of HTML; `FastTemplates` builds the same string in
Python for them and hands every other template (forms, fields, errors, radio buttons…) to
Django. tests/test_form_renderer.py proves the output identical, template by template, so
an upgrade of Django that changes one of them fails that test rather than the pages.
"""

from html import escape

from django.forms.renderers import DjangoTemplates
from django.utils.formats import localize
from django.utils.html import conditional_escape
from django.utils.safestring import SafeData, mark_safe

WIDGETS = "django/forms/widgets/"
# The widget templates that are nothing but {% include "django/forms/widgets/input.html" %}.
INPUTS = frozenset(
    WIDGETS + name
    for name in (
        "input.html",
        "checkbox.html",
        "color.html",
        "date.html",
        "datetime.html",
        "email.html",
        "file.html",
        "hidden.html",
        "number.html",
        "password.html",
        "search.html",
        "tel.html",
        "text.html",
        "time.html",
        "url.html",
    )
)
SELECT = WIDGETS + "select.html"
OPTION = WIDGETS + "select_option.html"
LABEL = "django/forms/label.html"


def _text(value) -> str:
    """{{ value|stringformat:'s' }}: the string, escaped unless it was already safe."""
    text = str(value)
    return text if isinstance(value, SafeData) else escape(text)


def _shown(value) -> str:
    """{{ value }}: localised, escaped unless safe."""
    return conditional_escape(localize(value))


def _attrs(attrs: dict) -> str:
    """django/forms/widgets/attrs.html and django/forms/attrs.html."""
    return "".join(
        f" {_shown(name)}" if value is True else f' {_shown(name)}="{_text(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


def _input(widget: dict) -> str:
    value = "" if widget["value"] is None else f' value="{_text(widget["value"])}"'
    return (
        f'<input type="{_shown(widget["type"])}" name="{_shown(widget["name"])}"'
        f"{value}{_attrs(widget['attrs'])}>"
    )


def _option(option: dict) -> str:
    return (
        f'<option value="{_text(option["value"])}"{_attrs(option["attrs"])}>'
        f"{_shown(option['label'])}</option>"
    )


class FastTemplates(DjangoTemplates):
    """Django's renderer, but inputs, selects, options and labels built in Python."""

    def render(self, template_name, context, request=None):
        if template_name in INPUTS:
            return mark_safe(_input(context["widget"]))  # noqa: S308 - escaped above
        if template_name == SELECT:
            html = self._select(context["widget"])
            if html is not None:
                return mark_safe(html)  # noqa: S308 - escaped above
        if template_name == LABEL:
            label = _shown(context["label"])
            if context["use_tag"]:
                tag = _shown(context["tag"])
                label = f"<{tag}{_attrs(context['attrs'])}>{label}</{tag}>"
            return mark_safe(label)  # noqa: S308 - escaped above
        return super().render(template_name, context, request=request)

    @staticmethod
    def _select(widget: dict) -> str | None:
        parts = [f'<select name="{_shown(widget["name"])}"{_attrs(widget["attrs"])}>']
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{_shown(group_name)}">')
            for option in options:
                if option["template_name"] != OPTION:
                    return None  # a widget of its own: Django's template draws it
                # The included option template ends with a newline, kept by the include.
                parts.append("\n  " + _option(option) + "\n")
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")
        return "".join(parts)
