"""Past Zendesk's 1,000-result search cap, end to end: reports and similar-case lookups over
more than 1,000 tickets, through the real zenpy-based adapter against the strict sandbox.

`/api/v2/search` stops at 1,000 results (page 11 of 100 is a 422), and Export Search Results
(`/api/v2/search/export`) refuses `type:` in its query (the type goes in `filter[type]`),
pages by cursor and orders by created_at only (Zendesk Search API reference).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from connector.knowledge.similar import find_similar
from connector.platforms.base import RetryPolicy
from connector.platforms.mapping import default_zendesk_mapping
from connector.platforms.zendesk import ZendeskAdapter
from connector.review.collect import list_ids
from connector.review.metrics import Period
from connector.sandbox.server import Clock
from connector.sandbox.zendesk import ZendeskSandbox

NOW = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
MANY = 1_050


@pytest.fixture(scope="module")
def zendesk():
    with ZendeskSandbox(clock=Clock(NOW), deliver_webhooks=False, auto_close_after=None) as sandbox:
        for n in range(MANY):
            sandbox.create_ticket(f"Gateway certificate expired {n}", "VPN gateway rejects the client certificate",
                                  status="solved" if n % 2 else "open", created=NOW - timedelta(days=3, minutes=n))
        yield sandbox


@pytest.fixture
def adapter(zendesk):
    zendesk.reset_calls()
    return ZendeskAdapter(zendesk.base_url, zendesk.email, zendesk.api_token, default_zendesk_mapping(),
                          policy=RetryPolicy(sleep=lambda seconds: None))


def test_report_lists_more_than_1000_tickets_through_the_export(zendesk, adapter):
    period = Period(NOW - timedelta(days=7), NOW)
    ids = list(list_ids(adapter, "zendesk", period))
    assert len(ids) == MANY and len(set(ids)) == MANY
    # Open ones (525) fit in /search; the done ones too; so does all of it once over the cap.
    assert zendesk.count(status=422) == 0 and zendesk.count(status=400) == 0


def test_a_search_over_the_cap_switches_to_the_export_without_type_in_its_query(zendesk, adapter):
    found = [raw["id"] for raw in adapter.search("type:ticket status<closed", fields=["id"])]
    assert len(found) == MANY and len(set(found)) == MANY
    assert zendesk.count(method="GET", path="/api/v2/search.json") == 1  # the count said > 1,000
    assert zendesk.count(method="GET", path="/api/v2/search/export.json", status=200) == 11
    assert zendesk.count(status=400) == 0 and zendesk.count(status=422) == 0


def test_an_ordered_search_keeps_its_order_for_1000_then_the_export_adds_the_rest(zendesk, adapter):
    results = adapter.search("type:ticket status<closed order_by:created_at sort:desc", fields=["id", "created_at"])
    first = [next(results)["id"] for _ in range(1000)]
    assert first == list(range(1, 1001))  # newest first, as asked (ticket n is n minutes older)
    assert zendesk.count(method="GET", path="/api/v2/search/export.json") == 0
    rest = [raw["id"] for raw in results]
    assert sorted(first + rest) == list(range(1, MANY + 1))
    assert zendesk.count(status=422) == 0  # never asked for page 11


def test_similar_cases_over_more_than_1000_matches_read_one_sorted_page_per_term(zendesk, adapter):
    new = adapter.fetch(str(zendesk.create_ticket("Gateway certificate expired again",
                                                  "VPN gateway rejects the client certificate", created=NOW)))
    zendesk.reset_calls()
    settings = SimpleNamespace(min_score=0.1, max_results=3, recall_terms=3, recall_limit=20)
    cases = find_similar(adapter, new, settings)
    assert len(cases) == 3
    searches = zendesk.count(method="GET", path="/api/v2/search.json", status=200)
    assert 1 <= searches <= settings.recall_terms
    assert zendesk.count(method="GET", path="/api/v2/search/export.json") == 0 and zendesk.count(status=422) == 0
