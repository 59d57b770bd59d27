"""Worker lifecycle hooks (connected in ComputeConfig.ready)."""

from celery.signals import worker_ready, worker_shutdown


@worker_ready.connect
def on_worker_ready(sender=None, **kwargs):
    from . import hosts

    queues = {q.name for q in sender.task_consumer.queues} if getattr(sender, "task_consumer", None) else set()
    hosts.start_agent_for(queues)


@worker_shutdown.connect
def on_worker_shutdown(sender=None, **kwargs):
    from . import hosts

    hosts.stop_agent()
