"""Writing many rows fast: PostgreSQL's COPY instead of a multi-row INSERT, and one UPDATE
from arrays instead of bulk_update's CASE per row.

`bulk_create` compiles one INSERT with a parameter per value, and psycopg then quotes each
one: for the ingest path (a batch of 500 items is ~2,000 rows) that was most of the time.
COPY streams the rows as they are. The primary keys are taken from the table's sequence
first (one query), so the objects get their ids and rows referring to them can follow, and
they stay unique whatever other writers do at the same time.

Elsewhere (SQLite) this is bulk_create, which returns the ids there too.
"""

import functools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.db.models import JSONField, Model


@dataclass(frozen=True)
class _Plan:
    """How insert() reads one model's rows: its columns, and the fields whose values need
    more than a look-up in the object's __dict__."""

    fields: list
    values: Callable  # an object's __dict__ -> its plain values, in column order
    related: list  # foreign keys: the related object may have been saved after this one
    stamped: list  # auto_now(_add): Field.pre_save stamps them
    json: list  # (position in the row, field): dumped to text


@functools.cache
def _plan(model: type[Model]) -> _Plan:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    names = [field.attname for field in fields]
    # itemgetter of one name gives the value itself, of several a tuple.
    values = operator.itemgetter(*names) if len(names) > 1 else lambda d: (d[names[0]],)
    return _Plan(
        fields=fields,
        values=values,
        related=[field for field in fields if field.is_relation],
        stamped=[
            field
            for field in fields
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        ],
        json=[(n, field) for n, field in enumerate(fields) if isinstance(field, JSONField)],
    )


def insert(objects: list[Model]) -> None:
    """Insert unsaved `objects` of one model, setting their primary keys, as bulk_create
    would: foreign keys taken from the related objects (saved before), auto_now(_add)
    fields stamped, the objects marked as saved."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    meta = model._meta
    plan = _plan(model)
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in plan.fields)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [meta.db_table, len(objects)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        # Table and column names come from the model, never from input. Errors from the
        # raw cursor become Django's (IntegrityError...), as from any query.
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {table} (id, {columns}) FROM STDIN") as copy,
        ):
            for obj, pk in zip(objects, ids, strict=True):
                values = obj.__dict__
                for field in plan.related:
                    # The related object may have been saved after this one was built.
                    related = field.get_cached_value(obj, None)
                    if related is not None:
                        if related.pk is None:
                            raise ValueError(f"{field.name} of {obj!r} is not saved yet.")
                        values[field.attname] = related.pk
                for field in plan.stamped:
                    field.pre_save(obj, add=True)
                row = [pk, *plan.values(values)]
                for position, field in plan.json:
                    row[position + 1] = json.dumps(row[position + 1], cls=field.encoder)
                copy.write_row(row)
                obj.pk = pk
                obj._state.adding, obj._state.db = False, connection.alias


def insert_rows(model: type[Model], rows: list[dict]) -> None:
    """Insert `rows` of `model`, each a dict of every concrete column but the primary key
    (by attribute name: `conversation_id`), without building model instances: for the many
    small rows no one reads back (Events). Nothing is returned."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**row) for row in rows])
        return
    meta = model._meta
    names = list(rows[0])
    json_names = {
        field.attname for field in meta.concrete_fields if isinstance(field, JSONField)
    } & set(names)
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in names)
    # Table and column names come from the model, never from input.
    statement = f"COPY {table} ({columns}) FROM STDIN"
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        for row in rows:
            for name in json_names:
                row[name] = json.dumps(row[name])
            copy.write_row(list(row.values()))


def update(objects: list[Model], fields: list[str]) -> None:
    """Save `fields` of saved `objects` of one model, as bulk_update would.

    bulk_update writes a CASE WHEN id = … THEN … for each object and field: two parameters
    per value, each compiled by Django and placed by psycopg. Here each field is one typed
    array and the statement joins them by position (`unnest`), whatever the batch size."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    targets = [meta.pk, *(meta.get_field(name) for name in fields)]
    arrays = [
        [target.get_db_prep_save(getattr(obj, target.attname), connection) for obj in objects]
        for target in targets
    ]
    columns = [quote(target.column) for target in targets]
    typed = ", ".join(f"%s::{target.cast_db_type(connection)}[]" for target in targets)
    table = quote(meta.db_table)
    assignments = ", ".join(f"{column} = given.{column}" for column in columns[1:])
    # Table and column names come from the model, never from input.
    statement = (
        f"UPDATE {table} SET {assignments} FROM unnest({typed}) "  # noqa: S608
        f"AS given ({', '.join(columns)}) WHERE {table}.{columns[0]} = given.{columns[0]}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, arrays)
