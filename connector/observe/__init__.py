"""Observe mode and rule-level rollout: record what the connector would write, write nothing.

An admin who installs a connector that writes to every ticket of a live service desk wants
to watch it first. `CONNECTOR_MODE=observe` (or `connector serve --observe`) runs everything
– webhooks, queue, timers, sweeps, rules – but every plan is recorded instead of applied;
`mode: observe` on one rule does the same for that rule's actions only, while the other
rules are enforced in the same reconcile.

- `records`: one recorded action (`Observation`) and its fingerprint, which dedupes the
  same one-time action re-planned on every reconcile (no marker is written to stop it).
- `store`: where records live – the queue's own backend (SQLite file or Redis), bounded.
- `rollout`: splitting a plan into enforced and observed actions, recording the observed
  ones, and not replaying a backlog of stale one-time comments when a rule is enforced.
- `present`: text, JSON and CSV listings for `connector observed`.
"""
