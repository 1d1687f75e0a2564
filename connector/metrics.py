"""Prometheus counters shared by the receiver, the worker and the adapters.

One module defines every metric name so dashboards and alerts have a single place to look,
and so the receiver and the adapters cannot drift into two spellings of the same figure.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_RECEIVED = Counter(
    "connector_events_received_total",
    "Webhook events accepted and queued (or recognised as duplicates).",
    ["platform", "event"],
    registry=REGISTRY,
)
EVENTS_IGNORED = Counter(
    "connector_events_ignored_total",
    "Webhook events answered 200 without queueing: known but unhandled, or duplicates.",
    ["platform", "reason"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "connector_events_rejected_total",
    "Webhook requests refused with a 4xx/5xx, by reason.",
    ["platform", "reason"],
    registry=REGISTRY,
)
RECONCILES = Counter(
    "connector_reconciles_total",
    "Reconciles run, by outcome (applied, noop, not_found, error).",
    ["platform", "outcome"],
    registry=REGISTRY,
)
API_CALLS = Counter(
    "connector_api_calls_total",
    "HTTP requests sent to the platforms, by method and response status.",
    ["platform", "method", "status"],
    registry=REGISTRY,
)
TRANSITIONS_UNAVAILABLE = Counter(
    "connector_transitions_unavailable_total",
    "Transitions a plan asked for that the platform's workflow did not offer.",
    ["platform", "to_status"],
    registry=REGISTRY,
)
WRITES_REFUSED = Counter(
    "connector_writes_refused_total",
    "Writes a plan asked for that the platform refuses and would refuse again (not on the edit "
    "screen, status not editable, required transition field missing, internal note impossible).",
    ["platform", "what"],  # what: field | labels | comment | transition | status | tags
    registry=REGISTRY,
)
REPLANS = Counter(
    "connector_replans_total",
    "Reconciles re-read and re-planned at once because the platform answered 409 or the "
    "ticket changed under the write (e.g. Zendesk closed it).",
    ["platform", "outcome"],  # outcome: retried | gave_up
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "connector_queue_depth",
    "Tasks waiting in the durable queue (sampled when /metrics is read).",
    registry=REGISTRY,
)
# The receiver's HTTP server (connector/http_server.py), sampled every second.
RECEIVER_CONNECTIONS = Gauge(
    "connector_receiver_connections",
    "Open client connections of the receiver, by state.",
    ["state"],  # receiving (a request not complete yet) | serving | idle
    registry=REGISTRY,
)
RECEIVER_REQUESTS_WAITING = Gauge(
    "connector_receiver_requests_waiting",
    "Complete requests waiting for a free receiver thread.",
    registry=REGISTRY,
)
RECEIVER_CONNECTIONS_DROPPED = Counter(
    "connector_receiver_connections_dropped_total",
    "Client connections the receiver closed to protect itself, by reason.",
    ["reason"],  # read_deadline | connection_limit
    registry=REGISTRY,
)
