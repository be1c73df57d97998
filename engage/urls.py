"""The pages' addresses. Each views module lists its own, so pages can grow apart."""

from engage.views import conversation, feedback, notifications, queue, saved_replies, sources

urlpatterns = [
    *queue.urlpatterns,
    *conversation.urlpatterns,
    *feedback.urlpatterns,
    *saved_replies.urlpatterns,
    *notifications.urlpatterns,
    *sources.urlpatterns,
]
