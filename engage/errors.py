"""Domain errors. Each carries a message written for the person who asked.

Views and the API map them to responses in one place: TransitionNotAllowed, VersionConflict
and Conflict → 409, InvalidInput → 422, django's PermissionDenied → 403.
"""


class EngageError(Exception):
    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = str(message)
        self.field = field


class TransitionNotAllowed(EngageError):
    """A rule of the cycle refused the move."""


class VersionConflict(EngageError):
    """The caller saw an older version than the one stored."""


class Conflict(EngageError):
    """The change clashes with the current state (already linked, already recorded...)."""


class InvalidInput(EngageError):
    """The request names something that does not exist or is not acceptable."""
