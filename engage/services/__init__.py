"""Every write of engage. Each function is one transaction that checks its rule once,
records its Event(s) through engage.history and enqueues jobs only after commit."""

import functools

from django.db import OperationalError, transaction

# PostgreSQL's codes for a transaction it rolled back to let others go on: the victim of a
# deadlock, or a serialization failure. Either is safe to run again from the start.
RETRYABLE = frozenset({"40P01", "40001"})
ATTEMPTS = 3


def retry_on_deadlock(service):
    """Run `service` (a @transaction.atomic function) again when PostgreSQL chose its
    transaction as a deadlock's victim, up to ATTEMPTS times in all.

    Some writes lock a ticket and then conversations (linking evidence, shipping a ticket),
    others a conversation and then its tickets (a reply that tells the person, a merge):
    each order follows from what the write learns as it goes, so two of them meeting on the
    same rows can wait for each other, and PostgreSQL then aborts one. Rolled back whole (its
    Events, its jobs queued on commit), it is simply run again, and the user sees the write
    done instead of an error. Inside an outer transaction nothing can be retried: the error
    goes up to whoever opened it.
    """

    @functools.wraps(service)
    def run(*args, **kwargs):
        for _attempt in range(ATTEMPTS - 1):
            outermost = not transaction.get_connection().in_atomic_block
            try:
                return service(*args, **kwargs)
            except OperationalError as error:
                if not outermost or getattr(error.__cause__, "sqlstate", None) not in RETRYABLE:
                    raise
        return service(*args, **kwargs)  # the last attempt: its error goes up as it is

    return run
