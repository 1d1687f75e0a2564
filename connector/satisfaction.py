"""The reporter's satisfaction on the process's three-step scale, from whatever the platform holds.

The process documents ask the reporter to rate a closed problem "satisfied / basically
satisfied / needs improvement". Sites record that answer in one of two ways, and both are
read into the same three levels (`Ticket.satisfaction`), so the review report counts one
scale whatever the platform:

- a field (logical field `satisfaction`) with those options – option text or tag, in
  English or Chinese (满意 / 基本满意 / 需改进), `_`/`-`/spaces alike;
- the platform's own customer-satisfaction survey:
  - Zendesk's ticket `satisfaction_rating` (legacy CSAT): `score` is "good", "bad",
    "offered" (asked, not answered) or "unoffered" (never asked); "Satisfaction Ratings",
    https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/.
    Two answers only: good -> satisfied, bad -> needs improvement; offered/unoffered are no
    answer. Zendesk's scale has no middle, so "basically satisfied" never comes from it.
  - Jira Service Management's request feedback: the "Satisfaction" field (custom type
    `com.atlassian.servicedesk:sd-request-feedback`, schema type `sd-feedback`) and
    `GET /rest/servicedeskapi/request/{issueIdOrKey}/feedback` (`{"type": "csat", "rating":
    1..5, "comment": {...}}`, "an integer value between 1 and 5",
    https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/#api-rest-servicedeskapi-request-requestidorkey-feedback-get).
    The five stars map 5–4 -> satisfied, 3 -> basically satisfied, 2–1 -> needs improvement.
    The field's value is read as a number or as an object carrying `rating`; anything else
    is no answer (fail closed: never a guessed rating).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal

Satisfaction = Literal["satisfied", "basically satisfied", "needs improvement"]
LEVELS: tuple[Satisfaction, ...] = ("satisfied", "basically satisfied", "needs improvement")

_WORDS: dict[str, Satisfaction] = {
    "satisfied": "satisfied",
    "very satisfied": "satisfied",
    "满意": "satisfied",
    "非常满意": "satisfied",
    "basically satisfied": "basically satisfied",
    "basically": "basically satisfied",
    "基本满意": "basically satisfied",
    "needs improvement": "needs improvement",
    "need improvement": "needs improvement",
    "not satisfied": "needs improvement",
    "dissatisfied": "needs improvement",
    "需改进": "needs improvement",
    "需要改进": "needs improvement",
    "不满意": "needs improvement",
    # Zendesk CSAT scores (see the module docstring).
    "good": "satisfied",
    "bad": "needs improvement",
}


def _normalized(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text).strip().casefold()


def from_rating(rating: float) -> Satisfaction | None:
    """Jira Service Management's 1–5 stars: 5–4 satisfied, 3 basically satisfied, 2–1 needs improvement."""
    if not math.isfinite(rating) or not 1 <= rating <= 5:
        return None
    if rating >= 4:
        return "satisfied"
    if rating >= 3:
        return "basically satisfied"
    return "needs improvement"


def satisfaction_level(value: object) -> Satisfaction | None:
    """One of LEVELS for a recorded answer; None for no answer or a value it cannot read."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        # JSM feedback {"rating": 4, ...}; Zendesk satisfaction_rating {"score": "good", ...}.
        for key in ("rating", "score"):
            if key in value:
                return satisfaction_level(value[key])
        return None
    if isinstance(value, (int, float)):
        return from_rating(float(value))
    if isinstance(value, str):
        text = _normalized(value)
        if not text:
            return None
        if text in _WORDS:
            return _WORDS[text]
        try:
            return from_rating(float(text))
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return satisfaction_level(value[0])
    return None
