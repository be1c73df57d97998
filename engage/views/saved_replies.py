"""Saved replies (canned responses): managed by community managers."""

urlpatterns: list = []
