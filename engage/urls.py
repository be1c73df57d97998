"""The pages' addresses. Each views module lists its own, so pages can grow apart."""

from engage.views import (
    conversation,
    dashboard,
    feedback,
    health,
    notifications,
    queue,
    saved_replies,
    sources,
    targets,
)

urlpatterns = [
    *queue.urlpatterns,
    *conversation.urlpatterns,
    *feedback.urlpatterns,
    *saved_replies.urlpatterns,
    *notifications.urlpatterns,
    *sources.urlpatterns,
    *dashboard.urlpatterns,
    *targets.urlpatterns,
    *health.urlpatterns,
]
