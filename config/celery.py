"""The Celery app. Tasks are autodiscovered from each app's tasks.py.

Queues: `default` for control-plane work; compute hosts consume their own
`compute.<host>` queue (added by the compute service when routing).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dreamcompute")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
