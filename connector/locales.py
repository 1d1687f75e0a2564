"""Put the reporter's locale on a ticket before the rules see it, only when a rule needs it.

The closing summary speaks the reporter's language (`ClosingSummaryRule`, `comment.templates`).
Zendesk gives the requester's `locale` with the ticket (users side-loaded with the audits);
Jira does not: the reporter embedded in an issue is a UserDetails without `locale`, only the
full User of `GET /rest/api/2/user` carries it (Jira platform OpenAPI, schemas User and
UserDetails, connector/sandbox/specs/jira-platform.openapi.json). The rules engine is pure, so
that one extra request is made here, between fetch and evaluate, like the review gate's
approvals (`connector.approvals`):

    ticket = adapter.fetch(ticket_id)
    ticket = with_approvals(adapter, ticket, config)
    ticket = with_reporter_locale(adapter, ticket, config, now)   # reads only when it matters
    plan = evaluate(ticket, now, config)

The seam has two halves that know nothing of each other. A rule says, purely, whether its
outcome depends on the locale (`ClosingSummaryRule.wants_reporter_locale`: a summary is owed
now, the ticket has no locale, the templates are in more than one language), so an open
ticket, a summary already sent or a single-language config costs no request. An adapter says
whether it can read a reporter's locale by having a `reporter_locale(ticket)` method (the
Jira adapter, which remembers each reporter's answer for the process; Zendesk's has none and
needs none). It takes `now` because "a summary is owed now" includes the rule's
`max_delay_hours`; the caller passes the instant it evaluates at.

Unlike the approvals, a failed read is not an error here: a summary in the default language
is a worse summary, not a wrong decision. The adapter logs the failure and answers None, and
the rule falls back to `comment.default`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.model import Ticket
from connector.rules.closing_summary import ClosingSummaryRule

if TYPE_CHECKING:
    from connector.config import SupportConfig

log = logging.getLogger(__name__)


def wants_reporter_locale(ticket: Ticket, now: datetime, config: "SupportConfig") -> bool:
    """True when some rule's outcome for `ticket` at `now` depends on the reporter's locale. Pure."""
    return any(isinstance(rule, ClosingSummaryRule) and rule.wants_reporter_locale(ticket, now, config)
               for rule in config.rules)


def with_reporter_locale(adapter: Any, ticket: Ticket, config: "SupportConfig", now: datetime) -> Ticket:
    """`ticket` with `requester_locale` read when a rule needs it and the platform can tell; else `ticket`."""
    reader = getattr(adapter, "reporter_locale", None)
    if reader is None or not wants_reporter_locale(ticket, now, config):
        return ticket
    locale = reader(ticket)
    log.info("reporter_locale.read", extra={"platform": ticket.platform, "ticket_key": ticket.key,
                                            "known": locale is not None})
    return ticket if locale is None else ticket.model_copy(update={"requester_locale": locale})
