"""Work for after commit, batched: one callback per transaction scope.

A request that creates a router with its gateway touches the router three
times (created, gateway set, its gateway port made), and each step says
so: "sync this router", "tell the browsers". Run once per step, that is
three identical agent tasks and three trips to the channel layer. Instead
each step adds an item to a batch that runs once, after commit::

    on_commit_batch(flush, key, value)

``flush`` receives the batch's values in the order their keys were first
added; a key already waiting to be flushed is not added again.

Batches follow Django's savepoint rules: a batch belongs to the savepoints
that were open when it was made, and an item joins a batch only when the
savepoints open now are exactly the batch's (those it had that were since
released no longer count). So a savepoint that rolls back drops its own
items with it, never an outer one's; and a batch left unrun by a test's
captured callbacks (which stay registered) is never joined by a later
atomic block, whose own savepoint it does not share.

Outside a transaction ``flush`` runs at once, as ``on_commit`` does.
"""

from django.db import transaction


class _Batch:
    """The one ``on_commit`` callback of a batch."""

    def __init__(self, flush):
        self.flush = flush
        self.items = {}
        self.ran = False

    def __call__(self):
        self.ran = True
        self.flush(list(self.items.values()))


def on_commit_batch(flush, key, value, using=None):
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        flush([value])
        return
    # Savepoints of a batch that are not open now were released (rolled back
    # ones took their callbacks with them): a batch may be joined when every
    # savepoint open now is one of its own.
    open_now = set(connection.savepoint_ids)
    joinable = [callback for savepoints, callback, _robust in connection.run_on_commit
                if isinstance(callback, _Batch) and callback.flush is flush and not callback.ran
                and open_now <= savepoints]
    if any(key in batch.items for batch in joinable):
        return
    if joinable:
        joinable[-1].items[key] = value  # the newest: items leave in about the order they came
        return
    batch = _Batch(flush)
    batch.items[key] = value
    transaction.on_commit(batch, using=using)
