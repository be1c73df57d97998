"""`field__any=values`: the `IN` lookup as `field = ANY(%s)` with one array on PostgreSQL.

An IN list of a thousand values is a thousand parameters, each compiled by Django and
placed by psycopg one at a time: on the ingest path, where a batch of 500 items looks up a
thousand external ids at once, that cost more than the query itself. An array is one
parameter, and the indexes serve `= ANY` as they serve `IN`. Elsewhere it is `IN`.
"""

from django.core.exceptions import EmptyResultSet
from django.db.models import Field
from django.db.models.lookups import In


@Field.register_lookup
class AnyOf(In):
    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return self.as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [
            field.get_db_prep_value(value, connection, prepared=True)
            for value in dict.fromkeys(self.rhs)
            if value is not None
        ]
        if not values:
            raise EmptyResultSet
        return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", (*lhs_params, values)
