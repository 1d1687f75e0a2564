"""Put similar resolved cases on a ticket before the rules see it, only when a rule will use them.

The rules engine is pure (no I/O), so the searches a similar-cases note or the closure
rule's knowledge-base gate need are done here, between fetch and evaluate:

    ticket = adapter.fetch(ticket_id)
    ticket = enrich(adapter, ticket, config)       # searches only when a rule wants the answer
    plan = evaluate(ticket, now, config)

A lookup costs platform searches (API calls are the scarce resource), so it runs only
when `lookup_settings` says a rule would act on the answer: a new ticket whose
similar-cases note has not been posted, or a resolve attempt the knowledge-base gate has
not judged. Both record their outcome with a marker on the ticket, so a ticket costs at
most one lookup while new and one per resolve attempt, however often it is reconciled.

A failed search never fails the reconcile: intake, SLA and escalation must not wait on a
suggestion. The ticket goes on with `similar_cases = None` ("nobody looked"), so the note
is not posted and the gate does not apply this time; the next reconcile tries again,
because no marker was written.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from connector.knowledge.similar import find_similar
from connector.model import Ticket
from connector.platforms.base import PlatformAdapter, PlatformError
from connector.rules.closure import ClosureRule
from connector.rules.similar_cases import SimilarCasesRule, similar_settings

if TYPE_CHECKING:
    from connector.config import SupportConfig

log = logging.getLogger(__name__)


def lookup_settings(ticket: Ticket, config: "SupportConfig") -> SimilarCasesRule | None:
    """The settings to look up similar cases with, or None when no rule would use the answer. Pure."""
    for rule in config.rules:
        if isinstance(rule, SimilarCasesRule) and rule.wants_lookup(ticket, config):
            return rule
    if any(isinstance(rule, ClosureRule) and rule.wants_lookup(ticket, config) for rule in config.rules):
        # The closure rule's check() makes sure a similar-cases rule exists when its gate is on.
        return similar_settings(config)
    return None


def wants_lookup(ticket: Ticket, config: "SupportConfig") -> bool:
    """True when some rule would use `ticket.similar_cases`. Pure: no search is made."""
    return lookup_settings(ticket, config) is not None


def enrich(adapter: PlatformAdapter, ticket: Ticket, config: "SupportConfig") -> Ticket:
    """`ticket` with `similar_cases` filled in when a rule wants them; otherwise `ticket` itself."""
    settings = lookup_settings(ticket, config)
    if settings is None:
        return ticket
    try:
        cases = find_similar(adapter, ticket, settings)
    except PlatformError as exc:
        log.warning("knowledge.lookup_failed", extra={
            "platform": ticket.platform, "ticket_key": ticket.key, "error": type(exc).__name__,
            "status": exc.status,
        })
        return ticket
    return ticket.model_copy(update={"similar_cases": cases})
