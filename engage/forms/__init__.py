"""Input validation for the pages. Forms parse and check shapes; the services own the rules."""

from engage.forms.conversation import (
    ActionForm,
    AdvanceForm,
    AssignForm,
    CreateTicketForm,
    LinkTicketForm,
    NoChangeForm,
    NoteForm,
    PriorityForm,
    ReplyForm,
    RestartForm,
    StateForm,
)
from engage.forms.queue import (
    FOLLOW_UP_CHOICES,
    SORT_CHOICES,
    QueueFilterForm,
)

__all__ = [
    "ActionForm",
    "AdvanceForm",
    "RestartForm",
    "AssignForm",
    "ReplyForm",
    "NoteForm",
    "NoChangeForm",
    "CreateTicketForm",
    "LinkTicketForm",
    "PriorityForm",
    "StateForm",
    "SORT_CHOICES",
    "FOLLOW_UP_CHOICES",
    "QueueFilterForm",
]
