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
UNSIGNED_WEBHOOKS_ALLOWED = Gauge(
    "connector_unsigned_webhooks_allowed",
    "1 when this receiver accepts unsigned webhooks from the platform (`--allow-unsigned` and no "
    "secret set), else 0. Alert on 1 anywhere the receiver is reachable from the internet.",
    ["platform"],
    registry=REGISTRY,
)


# --- label values -----------------------------------------------------------------------------
#
# Every label value of a series is a new time series in Prometheus, kept for the retention
# period. Values that come from a request (an event type, a reason) are mapped onto the closed
# sets below, so a sender cannot create series at will; anything else is counted as `other`.

OTHER = "other"
PLATFORM_LABELS = frozenset({"jira", "zendesk"})

# Jira: the events the receiver knows (handled or deliberately ignored; webhooks.jira).
JIRA_EVENT_LABELS = frozenset(
    {
        "jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created", "comment_updated",
        "comment_deleted", "worklog_created", "worklog_updated", "worklog_deleted", "jira:worklog_updated",
        "issuelink_created", "issuelink_deleted", "attachment_created", "attachment_deleted",
        "issue_property_set", "issue_property_deleted", "project_created", "project_updated", "project_deleted",
        "jira:version_created", "jira:version_updated", "jira:version_released", "jira:version_unreleased",
        "jira:version_deleted", "user_created", "user_updated", "user_deleted", "sprint_created",
        "sprint_started", "sprint_closed", "sprint_updated", "sprint_deleted", "board_created", "board_updated",
        "board_deleted", "board_configuration_changed",
    }
)
# Zendesk: the ticket event types of the event webhooks
# (https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/), plus
# "trigger" for a trigger/automation webhook. A type Zendesk adds later is counted as `other`
# until it is listed here; the event itself is still handled.
ZENDESK_EVENT_LABELS = frozenset(
    {"trigger"}
    | {
        f"zen:event-type:ticket.{name}"
        for name in (
            "agent_assignment_changed", "attachment_linked_to_comment", "attachment_redacted_from_comment",
            "brand_changed", "comment_added", "comment_made_private", "comment_redacted", "created",
            "custom_field_changed", "custom_status_changed", "description_changed", "email_ccs_changed",
            "external_id_changed", "followers_changed", "form_changed", "group_assignment_changed",
            "marked_as_spam", "merged", "organization_changed", "permanently_deleted", "priority_changed",
            "problem_link_changed", "requester_changed", "soft_deleted", "status_changed", "subject_changed",
            "submitter_changed", "tags_changed", "task_due_at_changed", "ticket_type_changed", "undeleted",
        )
    }
)
EVENT_LABELS = {"jira": JIRA_EVENT_LABELS, "zendesk": ZENDESK_EVENT_LABELS}

# Why a delivery was answered 200 without queueing, or refused (webhooks.app and the blueprints).
IGNORE_REASONS = frozenset(
    {"duplicate", "no_event_type", "own_change", "ticket_deleted", "unhandled_event", "unknown_event"}
)
REJECT_REASONS = frozenset(
    {
        "bad_delivery_id", "bad_signature", "bad_ticket_id", "body_too_large", "empty_body", "foreign_site",
        "missing_ticket_id", "not_json", "not_json_object", "queue_unavailable", "secret_not_configured",
        "too_deep",
    }
)


def platform_label(platform: object) -> str:
    return platform if isinstance(platform, str) and platform in PLATFORM_LABELS else OTHER


def event_label(platform: object, event_type: object) -> str:
    """`event_type` when it is a known event of `platform`, else `other`."""
    known = EVENT_LABELS.get(platform) if isinstance(platform, str) else None
    return event_type if known is not None and isinstance(event_type, str) and event_type in known else OTHER


def ignore_reason_label(reason: object) -> str:
    return reason if isinstance(reason, str) and reason in IGNORE_REASONS else OTHER


def reject_reason_label(reason: object) -> str:
    return reason if isinstance(reason, str) and reason in REJECT_REASONS else OTHER
