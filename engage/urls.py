from django.urls import path

from engage.views import conversation, queue

urlpatterns = [
    path("", queue.home, name="home"),
    path("queue/", queue.queue, name="queue"),
    path("queue/claim/", queue.claim_next, name="claim_next"),
    path("conversations/<int:pk>/", conversation.conversation_detail, name="conversation"),
    path("conversations/<int:pk>/advance/", conversation.advance, name="conversation_advance"),
    path("conversations/<int:pk>/restart/", conversation.restart, name="conversation_restart"),
    path("conversations/<int:pk>/assign/", conversation.assign, name="conversation_assign"),
    path("conversations/<int:pk>/reply/", conversation.reply, name="conversation_reply"),
    path("conversations/<int:pk>/notes/", conversation.note, name="conversation_note"),
    path(
        "conversations/<int:pk>/no-change/", conversation.no_change, name="conversation_no_change"
    ),
    path(
        "conversations/<int:pk>/tickets/new/",
        conversation.create_ticket,
        name="conversation_create_ticket",
    ),
    path(
        "conversations/<int:pk>/tickets/link/",
        conversation.link_ticket,
        name="conversation_link_ticket",
    ),
    path("conversations/<int:pk>/priority/", conversation.priority, name="conversation_priority"),
    path("conversations/<int:pk>/state/", conversation.state, name="conversation_state"),
]
