from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngageConfig(AppConfig):
    name = "engage"
    verbose_name = _("Engage")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from engage import lookups  # noqa: F401 - registers field__any
