"""The cloud's one volume type, ``ceph`` (the default): volumes live on the
configured STORAGE_BACKEND. Operators add or change types in Django admin."""

import uuid

from django.db import migrations


def seed(apps, schema_editor):
    VolumeType = apps.get_model("storage", "VolumeType")
    if not VolumeType.objects.exists():
        VolumeType.objects.create(id=str(uuid.uuid4()), name="ceph", description="Block storage on Ceph RBD",
                                  backend_name="default", is_public=True, is_default=True)


class Migration(migrations.Migration):
    dependencies = [("storage", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
