"""Live events for instances: the same partials the pages render."""

from django.template.loader import render_to_string


def instance_event(instance):
    html = render_to_string("compute/partials/instance_status.html", {"instance": instance})
    return {"kind": "swap", "id": f"instance-status-{instance.pk}", "html": html,
            "instance": {"id": instance.pk, "status": instance.status, "task_state": instance.task_state,
                         "power_state": instance.power_state, "progress": instance.progress}}
