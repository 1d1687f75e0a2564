"""Put the platform's approvals on a ticket before the rules see it, only when a rule needs them.

The rules engine is pure (no I/O), so the one extra request the review gate may need –
Jira Service Management's `GET /rest/servicedeskapi/request/{key}/approval` – is made here,
between fetch and evaluate, like the similar-cases lookup (`connector.knowledge.enrich`):

    ticket = adapter.fetch(ticket_id)
    ticket = with_approvals(adapter, ticket, config)   # reads only when a rule's outcome depends on it
    plan = evaluate(ticket, now, config)

The seam has two halves that know nothing of each other. A rule says, purely, whether its
outcome depends on the approvals (`ReviewGateRule.wants_approvals`: a critical change in a
done status that the reviewer field does not settle and that this resolve attempt has not
been answered for), so the common cases – an open ticket, an ordinary change, a reviewer
recorded – cost no request at all. An adapter says whether its platform has approvals by
having an `approvals(ticket)` method (the Jira adapter; Zendesk's has none: Zendesk's
approval requests – `/api/v2/approval_workflow_instances/{id}/approval_requests`, an
early-access feature of Suite Professional and up, support.zendesk.com "About approvals and
how they work" – are not read). The adapter knows no rules; this module knows no HTTP.

A failed read is not swallowed: the review gate would otherwise judge the ticket without
its approval and move a correctly approved change back. The error goes to the queue, which
retries the reconcile like a failed fetch. A project without approvals (404/403 from the
service-desk API, Jira Software) is the adapter's business: it answers "none" and remembers
the project, so it is not asked again in this process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from connector.model import Ticket
from connector.rules.review_gate import ReviewGateRule

if TYPE_CHECKING:
    from connector.config import SupportConfig

log = logging.getLogger(__name__)


def wants_approvals(ticket: Ticket, config: "SupportConfig") -> bool:
    """True when some rule's outcome for `ticket` depends on its approvals. Pure: nothing is read."""
    return any(isinstance(rule, ReviewGateRule) and rule.wants_approvals(ticket, config) for rule in config.rules)


def with_approvals(adapter: Any, ticket: Ticket, config: "SupportConfig") -> Ticket:
    """`ticket` with `approvals` read when a rule needs them and the platform has them; else `ticket`."""
    reader = getattr(adapter, "approvals", None)
    if reader is None or not wants_approvals(ticket, config):
        return ticket
    approvals = tuple(reader(ticket))
    log.info("approvals.read", extra={"platform": ticket.platform, "ticket_key": ticket.key,
                                      "approvals": len(approvals)})
    return ticket.model_copy(update={"approvals": approvals})
