"""The huey tasks of the connector, registered by name on a queue's huey instance.

A serialized task names its function by the registered name, so the receiver (which only
stores tasks) and the worker (which runs them) – separate processes with separate huey
objects – must register the same names. Other tasks (a chat delivery, …) are registered
here next to the reconcile.

The task body is passed in (`register_reconcile_task(huey, body)`): the queue never imports
the reconciler, so the receiver does not load the platform clients, and the worker decides
what runs (`connector.queue.worker` binds `connector.reconcile`; tests bind a stand-in).
"""

from __future__ import annotations

from collections.abc import Callable

from huey import Huey
from huey.api import TaskWrapper

RECONCILE_TASK = "reconcile_ticket"

# (platform, ticket_id) -> the outcome label (applied, noop, not_found, …); raises a
# transient platform error (`connector.queue.retry`) for the queue to requeue.
Reconcile = Callable[[str, str], str]


def register_reconcile_task(huey: Huey, body: Callable[..., str]) -> TaskWrapper:
    """Register the reconcile task on `huey`; `body` gets the task's arguments as keywords."""

    def reconcile_task(
        platform: str,
        ticket_id: str,
        attempt: int = 0,
        holds_pending_flag: bool = False,
        timer_key: str | None = None,
    ) -> str:
        return body(platform, ticket_id, attempt=attempt, holds_pending_flag=holds_pending_flag, timer_key=timer_key)

    return huey.task(name=RECONCILE_TASK)(reconcile_task)
