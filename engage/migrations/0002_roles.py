"""Create the two role groups with the model permissions that match what each may do.

The application checks roles by group membership (engage.permissions); the model
permissions make the same roles meaningful in the Django admin.
"""

from django.db import migrations

ROLES = {
    "community_manager": {
        "view": [
            "source",
            "contact",
            "tag",
            "conversation",
            "message",
            "note",
            "event",
            "feedbackticket",
            "feedbacklink",
        ],
        "add": ["conversation", "message", "note", "feedbackticket", "feedbacklink", "tag"],
        "change": ["conversation", "tag"],
    },
    "product_team": {
        "view": [
            "source",
            "contact",
            "tag",
            "conversation",
            "message",
            "note",
            "event",
            "feedbackticket",
            "feedbacklink",
        ],
        "add": ["feedbackticket", "feedbacklink"],
        "change": ["feedbackticket", "feedbacklink"],
    },
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLES.items():
        group, _created = Group.objects.get_or_create(name=role)
        codenames = [f"{action}_{model}" for action, models in grants.items() for model in models]
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="engage", codename__in=codenames)
        )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("engage", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
