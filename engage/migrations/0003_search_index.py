"""Full-text search index for the queue's text search, on PostgreSQL only.

It matches the expression engage.queries uses: to_tsvector('simple', text). The 'simple'
configuration does not stem, so it serves Italian and English posts alike. SQLite falls
back to a substring match and needs no index.
"""

from django.db import migrations

INDEX = "conv_text_search"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON engage_conversation "
            "USING gin (to_tsvector('simple'::regconfig, COALESCE(text, '')))"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("engage", "0002_roles")]

    operations = [migrations.RunPython(create_index, drop_index)]
