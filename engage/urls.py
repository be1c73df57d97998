"""The pages' addresses. Each views module lists its own, so pages can grow apart."""

from engage.views import conversation, queue

urlpatterns = [*queue.urlpatterns, *conversation.urlpatterns]
