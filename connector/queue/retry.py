"""When a reconcile that met a transient platform error is queued again.

Two retry policies exist on purpose, one per level, and their names say which:

- `connector.platforms.base.RetryPolicy` resends ONE HTTP request inside the running
  reconcile (short, jittered sleeps in the worker thread, bounded by `inline_wait_limit`).
- `RequeuePolicy` (here) puts the WHOLE reconcile back into the queue for later, when the
  platform's error outlived the inline retries (a long Retry-After, a 5xx that persists, a
  ticket that kept changing under us). Nothing sleeps: the task is stored with a delay, and
  the worker thread is free for other tickets meanwhile.

So a 429 with "Retry-After: 2" is waited out inline; one with "Retry-After: 120" becomes
a requeue no sooner than 120 s later. After `max_attempts` requeues the periodic sweep
picks the ticket up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from connector.platforms.base import Conflict, HostError, RateLimited, Timeout

# Conflict: reconcile() already re-read and re-planned a few times at once; a ticket that
# keeps changing under us is tried again later rather than dropped until the next sweep.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (RateLimited, HostError, Timeout, Conflict)


@dataclass(frozen=True)
class RequeuePolicy:
    """How often and how patiently a reconcile that met a transient platform error is requeued."""

    max_attempts: int = 5
    first_delay: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=15)
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS

    def delay(self, attempt: int, retry_after: float | None) -> timedelta:
        """Exponential backoff, but never sooner than the platform's Retry-After."""
        backoff = min(self.first_delay * (2**attempt), self.max_backoff)
        return max(backoff, timedelta(seconds=retry_after or 0))
