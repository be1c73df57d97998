"""manage.py create_api_token USERNAME [--name NAME]: a bearer token for the JSON API.

The token is printed once, alone on the last line, so that scripts can take it with
`tail -n 1`; only its SHA-256 is stored.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from engage import permissions
from engage.models import ApiToken
from engage.services import tokens


class Command(BaseCommand):
    help = "Create a bearer token for the JSON API and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user the token acts as.")
        parser.add_argument(
            "--name", default="", help="What the token is for, e.g. the script that uses it."
        )

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(_("There is no user “%(username)s”.") % {"username": username})
        if not user.is_active:
            raise CommandError(
                _("User “%(username)s” is inactive: a token would not authenticate.")
                % {"username": username}
            )
        limit = ApiToken._meta.get_field("name").max_length
        if len(name) > limit:
            raise CommandError(
                _("The name may have at most %(limit)d characters.") % {"limit": limit}
            )
        if not permissions.can_view(user):
            self.stderr.write(
                _(
                    "Warning: “%(username)s” has no role, so the API will answer 403 to "
                    "everything until they get one."
                )
                % {"username": username}
            )
        token, raw = tokens.create_token(user, name=name)
        self.stdout.write(
            _("Token %(prefix)s… for %(username)s. It is shown once: store it now.")
            % {"prefix": token.prefix, "username": username}
        )
        self.stdout.write(raw)
