"""The durable queue between the webhook receiver and the reconciler (a package, one job per module).

An event is only a hint that a ticket changed, so the queue carries *which ticket to look
at*, never what the event said: the worker re-reads the ticket anyway. That is what makes
the tricks of this package safe:

- **Burst collapsing.** Jira sends several webhooks for one edit (issue_updated plus
  comment_created, a retry or two). A per-ticket "pending" flag in huey's key/value storage
  is set when a reconcile is queued and cleared by the task *before* it fetches the ticket,
  so any number of events for one ticket cost one reconcile, and an event that arrives while
  a reconcile is running queues exactly one more (which will see the newer state).
- **Delivery dedupe.** A platform redelivers the same event (same delivery id) when it did
  not see our answer in time; the ids seen in the last hour are remembered in the queue's
  own storage, so every receiver process and every replica shares them.
- **One write per accepted event.** The delivery claim, the pending flag and the task are
  stored together in one SQLite transaction / one Redis script (`connector.queue.admission`), so
  a receiver killed at any instant leaves all of them or none: the platform's retry of an
  unanswered delivery is queued, never answered "duplicate" over a task that does not exist.
- **One reconcile per ticket at a time.** A per-ticket lock in the same storage; a task that
  finds the lock taken comes back a moment later instead of failing, so two workers never
  write to one ticket concurrently.

Transient platform failures (429 with Retry-After, 5xx, timeouts) reschedule the task no
earlier than the platform asked, a bounded number of times; after that the periodic sweep
picks the ticket up again. Flags and locks carry a timestamp and are taken over when stale,
so a worker killed mid-task cannot silence a ticket forever. A lock also names its holder
(see `Liveness`): a worker process that heartbeats into the queue's storage, so a lock
whose holder was killed (`kill -9`, a lost machine) is taken over as soon as the holder is
known to be dead – at once on the same host, within the heartbeat timeout elsewhere –
instead of after the 15-minute age limit. Takeovers are compare-and-swap operations in the
backend, so two workers racing for one dead holder's lock cannot both win.

SLA timers do not use huey's `eta` scheduling: they live in a deadline index in the same
storage (`ReconcileQueue.deadlines`, see `connector.queue.deadlines`), fired by a pump (`connector.sync.pump`) that
`run_worker` runs next to the consumer together with the periodic sweeps, so tests can
move a clock instead of waiting. `schedule_reconcile` remains for one-off delayed runs.

Storage: SQLite file `<data_dir>/queue.db` by default (one host, no extra service), Redis
when `CONNECTOR_QUEUE_URL=redis://…` (several hosts).

The modules, lowest first (each imports only modules of this package listed above it;
only the last imports `connector.reconcile`):

- `wakeup`: waking idle SQLite workers through FIFOs when a task is stored.
- `storage`: building huey for SQLite or Redis; compare-and-swap and raw values.
- `admission`: the delivery claim (the recent-delivery store), the pending flag and the
  task, stored as one write.
- `locks`: per-ticket locks, their holders, the worker heartbeats (`Liveness`).
- `retry`: `RequeuePolicy`, when a reconcile is queued again (not the platforms' inline
  `RetryPolicy`; the module says how they differ).
- `tasks`: the huey tasks, registered by name.
- `deadlines`: the SLA deadline index (each ticket's next deadline, settled tickets).
- `reconcile_queue`: `ReconcileQueue`, producer and consumer side; it also opens the
  stores kept in the same backend (`deadlines`, `connector.observe.store`,
  `connector.problem_numbers`), which themselves use only `storage` and `admission`.
- `persistence`: whether the queue's Redis keeps what was acknowledged (`/readyz`).
- `worker`: the worker process (`run_worker`) and in-process `WorkerThreads`; it binds the
  reconciler to the task, so it is the only module here that imports `connector.reconcile`.

This file imports nothing: a package `__init__` that re-exported the modules would run
them whenever any one submodule is imported (say `connector.queue.storage` by the
deadline index), and so turn the one-way dependencies into a circle. Import from the
module that defines a name.
"""
