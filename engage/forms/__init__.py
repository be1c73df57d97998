"""Input validation for the pages. Forms parse and check shapes; the services own the rules."""

from engage.forms.conversation import (
    ActionForm,
    AdvanceForm,
    AssignForm,
    CreateTicketForm,
    LinkTicketForm,
    MergeForm,
    NoChangeForm,
    NoteForm,
    PriorityForm,
    ReplyForm,
    RestartForm,
    StateForm,
    TagsForm,
)
from engage.forms.queue import (
    BULK_ACTIONS,
    FOLLOW_UP_CHOICES,
    SORT_CHOICES,
    BulkActionForm,
    QueueFilterForm,
    SavedViewForm,
)

__all__ = [
    "ActionForm",
    "AdvanceForm",
    "RestartForm",
    "AssignForm",
    "ReplyForm",
    "MergeForm",
    "NoteForm",
    "NoChangeForm",
    "CreateTicketForm",
    "LinkTicketForm",
    "PriorityForm",
    "StateForm",
    "TagsForm",
    "SORT_CHOICES",
    "FOLLOW_UP_CHOICES",
    "QueueFilterForm",
    "BULK_ACTIONS",
    "BulkActionForm",
    "SavedViewForm",
]
