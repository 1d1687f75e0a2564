"""Find resolved tickets like a given one: the platform's search for recall, BM25 for ranking.

Neither platform can rank by similarity to a whole ticket, and reading every resolved
ticket to rank them here would cost thousands of API calls. So the platform's own text
search narrows the field (recall) and the few dozen tickets it returns are ranked here
with BM25 over summary, description, root cause and solution (precision).

Recall: both Jira's `text ~ "a b"` and Zendesk's search require ALL the words of a query,
so one query with several words finds only tickets worded much like this one. Instead
there is one search per key term (`recall_terms`, default 3), each limited to the
`recall_limit` most recently updated resolved tickets, and the union is ranked. A lookup
therefore costs at most `recall_terms` search requests (each within one page), and it
happens only when a rule needs the answer (see `connector.knowledge.enrich`).

- Jira: `text ~ "<term>" AND statusCategory = Done AND key != "<key>" ORDER BY updated DESC`,
  asking for the fields a Ticket is built from (summary, description, status, dates and
  the mapped fields: root cause, solution …), not `*all`.
- Zendesk: `type:ticket status>=solved order_by:updated_at sort:desc <term>`.

Results are parsed with the same parsers as a fetch, so the mapping's names for root cause
and solution apply; a result that cannot be parsed is skipped, not fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

from connector.knowledge.bm25 import BM25
from connector.knowledge.text import key_terms, tokens
from connector.model import DONE_STATUSES, SimilarCase, Ticket
from connector.platforms.base import PlatformAdapter
from connector.platforms.field_values import MalformedTicketError

log = logging.getLogger(__name__)

# Resolved tickets the searches did not return, counted in the IDF (see `BM25`): about a
# working month of a small team, so a pool of a few candidates is not mistaken for the world.
BACKGROUND_DOCUMENTS = 100
# Jira fields a Ticket is built from besides the mapped ones (which `rule_fields` adds).
JIRA_FIELDS = ("summary", "description", "status", "created", "updated", "resolutiondate", "labels")


class SimilarSettings(Protocol):
    """What a lookup needs to know; the `similar-cases` rule carries these settings."""

    min_score: float
    max_results: int
    recall_terms: int
    recall_limit: int


def document(ticket: Ticket) -> list[str]:
    """The terms a ticket is ranked by. The summary counts twice: it is the densest
    statement of the problem, while descriptions also carry greetings, logs and signatures."""
    parts = [ticket.summary, ticket.summary, ticket.description,
             _text(ticket.fields.get("root_cause")), _text(ticket.fields.get("solution"))]
    return [term for part in parts for term in tokens(part)]


def rank(ticket: Ticket, candidates: Iterable[Ticket], settings: SimilarSettings) -> tuple[SimilarCase, ...]:
    """The candidates that score at least `min_score` against `ticket`, best first, at most `max_results`.

    The ticket itself is one of the indexed documents: its score against itself is the
    scale (see `BM25.similarity`), and a term only it has still weighs in the IDF.
    """
    pool = [c for c in candidates if c.id != ticket.id]
    if not pool:
        return ()
    query = document(ticket)
    index = BM25([query, *(document(c) for c in pool)], background=BACKGROUND_DOCUMENTS)
    scored = []
    for position, candidate in enumerate(pool, start=1):
        score = index.similarity(query, position, self_index=0)
        if score >= settings.min_score and score > 0:
            scored.append((score, candidate))
    # Ties go to the most recently updated case: its solution is the most likely to still apply.
    scored.sort(key=lambda pair: (-pair[0], -(pair[1].updated or pair[1].created).timestamp()))
    return tuple(_case(candidate, score) for score, candidate in scored[: settings.max_results])


def find_similar(adapter: PlatformAdapter, ticket: Ticket, settings: SimilarSettings) -> tuple[SimilarCase, ...]:
    """Resolved tickets of the same platform like `ticket`, best first (see the module docstring).

    Raises the adapter's `PlatformError`s; `enrich` decides what a failed lookup means.
    """
    terms = key_terms(ticket.summary, ticket.description, limit=settings.recall_terms)
    if not terms:
        return ()
    candidates: dict[str, Ticket] = {}
    for term in terms:
        for candidate in islice(_recall(adapter, ticket, term), settings.recall_limit):
            if candidate.id != ticket.id and candidate.status in DONE_STATUSES:
                candidates.setdefault(candidate.id, candidate)
    found = rank(ticket, candidates.values(), settings)
    log.info("knowledge.similar_cases", extra={
        "platform": ticket.platform, "ticket_key": ticket.key, "searches": len(terms),
        "candidates": len(candidates), "found": [case.key for case in found],
    })
    return found


def _recall(adapter: PlatformAdapter, ticket: Ticket, term: str) -> Iterator[Ticket]:
    if ticket.platform == "jira":
        query = (f'text ~ "{_jql_string(term)}" AND statusCategory = Done AND key != "{_jql_string(ticket.key)}" '
                 "ORDER BY updated DESC")
        raw_results = adapter.search(query, _jira_fields(adapter))
    else:
        # Key terms are letters, digits and Chinese only, so they cannot be read as search operators.
        raw_results = adapter.search(f"type:ticket status>=solved order_by:updated_at sort:desc {term}")
    for raw in raw_results:
        try:
            yield _parse(adapter, raw)
        except MalformedTicketError as exc:
            log.warning("knowledge.candidate_unreadable", extra={"platform": ticket.platform, "error": str(exc)})


def _jql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _case(candidate: Ticket, score: float) -> SimilarCase:
    return SimilarCase(key=candidate.key, url=candidate.url, summary=candidate.summary,
                       root_cause=_text(candidate.fields.get("root_cause")).strip(),
                       solution=_text(candidate.fields.get("solution")).strip(), score=round(score, 4))


# --- reading search results with the adapter's own parser -------------------------------
# Search results must become Tickets with the same mapping, field catalogue and site URL
# that `fetch` uses: both adapters offer that as `parse(raw)` (the catalogue is the
# adapter's cached one, so no request is added).


def _jira_fields(adapter: Any) -> list[str]:
    return adapter.rule_fields(JIRA_FIELDS)


def _parse(adapter: Any, raw: dict[str, Any]) -> Ticket:
    return adapter.parse(raw)
