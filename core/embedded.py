"""The in-process Celery worker of the embedded mode (no REDIS_URL).

A real Celery worker consumes kombu's memory transport in a daemon thread of
the web server process, so tasks still run asynchronously, after commit, with
no broker at all. It is started and warm-stopped by the ASGI lifespan
(config/asgi.py), never from AppConfig.ready(): management commands and
tests must not grow a worker thread.
"""

import logging
import threading

logger = logging.getLogger(__name__)

_worker = None
_thread = None


def start(timeout=30):
    """Start the worker thread and wait until it consumes; idempotent."""
    global _worker, _thread
    if _thread is not None:
        return
    from celery import signals

    from config.celery import app

    ready = threading.Event()

    def on_ready(consumer):
        # celery.apps.Worker sends worker_ready; a bare WorkController does
        # not, and the host agent of compute.<host> starts on it.
        signals.worker_ready.send(sender=consumer)
        ready.set()

    _worker = app.WorkController(
        pool="threads",
        concurrency=4,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=["default", *extra_queues()],
        ready_callback=on_ready,
        hostname="embedded@localhost",
        loglevel="WARNING",
    )
    _thread = threading.Thread(target=_worker.start, name="embedded-celery", daemon=True)
    _thread.start()
    if not ready.wait(timeout):
        raise RuntimeError("the embedded Celery worker did not start")
    logger.info("embedded Celery worker consuming %s", ", ".join(extra_queues() + ["default"]))


def extra_queues():
    """Queues a single-host embedded cloud must also serve (compute.<host> …)."""
    from django.conf import settings

    host = settings.COMPUTE_HOST
    return [f"compute.{host}", f"network.{host}", f"storage.{host}"]


def stop(timeout=30):
    """Warm stop: let running tasks finish, then join the thread."""
    global _worker, _thread
    if _thread is None:
        return
    from celery import signals
    from celery.worker import state

    signals.worker_shutdown.send(sender=_worker)
    state.should_stop = 0
    try:
        _worker.stop(in_sighandler=False)
    except Exception:  # noqa: BLE001 - stopping must never raise at shutdown
        logger.exception("stopping the embedded worker")
    _thread.join(timeout)
    _worker = _thread = None
