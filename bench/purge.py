"""Delete what a benchmark run wrote, so that the next run measures the same data set.

Django's own `delete()` loads every related row into Python first, which takes far too long
and too much memory for the million rows an import benchmark adds. `purge` deletes in SQL
instead: it follows the same relations Django's deletion collector follows (every foreign
key that points at the rows, however deep), clears the nullable ones and deletes the rest,
children first, without loading a row. Call it with django.setup() done.
"""

from collections.abc import Iterator

from django.db import models, transaction
from django.db.models.deletion import get_candidate_relations_to_delete

# on_delete handlers that leave the referencing row in place with its key cleared.
NULLING = {models.SET_NULL, models.DB_SET_NULL}


def purge(queryset: models.QuerySet, _path: tuple = ()) -> int:
    """Delete the rows of `queryset` and every row that depends on them; return how many
    rows of `queryset`'s own model went. Run it inside a transaction (Django's foreign keys
    on PostgreSQL are checked at commit, so the order within it does not matter there).

    Each level's keys are read first and passed down as a list: a chain of nested subqueries
    can make the planner scan whole tables, and an empty level ends the walk at once."""
    model = queryset.model
    ids = list(queryset.values_list("pk", flat=True))
    if not ids:
        return 0
    for relation in get_candidate_relations_to_delete(model._meta):
        related, key = relation.related_model, relation.field
        dependants = related._base_manager.filter(**{f"{key.name}__in": ids})
        if relation.on_delete in NULLING or (key.null and (related is model or related in _path)):
            # A self-reference (a message marked as a duplicate of another) or a cycle is
            # cut rather than followed, so the recursion ends.
            dependants.update(**{key.name: None})
        elif related is model or related in _path:
            dependants._raw_delete(dependants.db)
        else:
            purge(dependants, (*_path, model))
    rows = model._base_manager.filter(pk__in=ids)
    return rows._raw_delete(rows.db)


def chunks(queryset: models.QuerySet, size: int) -> Iterator[list[int]]:
    """The primary keys of `queryset`, `size` at a time, in key order."""
    last = 0
    while True:
        batch = list(
            queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size]
        )
        if not batch:
            return
        yield batch
        last = batch[-1]


def purge_in_batches(queryset: models.QuerySet, *, size: int = 5000) -> int:
    """`purge` `size` rows at a time, each batch its own transaction: a million rows in one
    transaction would queue a million deferred foreign-key checks in memory."""
    total = 0
    for batch in chunks(queryset, size):
        with transaction.atomic():
            total += purge(queryset.model._base_manager.filter(pk__in=batch))
    return total
