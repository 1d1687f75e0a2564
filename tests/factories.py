"""Small builders for platform-neutral tickets used by the rule and SLA tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from connector.model import AuthorRole, Comment, StatusChange, Status, Ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")
INTAKE = {
    "occurred_at": "2026-11-20T08:40:00+08:00",
    "impact_scope": "all stores",
    "symptom": "checkout fails",
    "repro_steps": "open checkout",
    "error_message": "HTTP 502",
    "environment": "Chrome 131, POS 4.2",
}


def at(text: str) -> datetime:
    """'2026-11-20 09:00' in Shanghai time (the standard calendar's zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def ticket(*, status: Status = Status.NEW, priority="P2", category="network", created="2026-11-20 09:00",
           fields=None, labels=(), history=(), comments=(), group=None, assignee=None, platform="jira",
           summary="VPN drops", description="") -> Ticket:
    return Ticket(
        platform=platform, id="10001", key="SUP-1", summary=summary, description=description,
        category=category, priority=priority, status=status, created=at(created),
        fields=dict(INTAKE if fields is None else fields), labels=frozenset(labels),
        status_history=tuple(StatusChange(at=at(t), from_status=f, to_status=s) for t, f, s in history),
        comments=tuple(comments), group=group, assignee=assignee,
    )


def agent_reply(when: str, public: bool = True, n: int = 1) -> Comment:
    return Comment(id=f"c{n}-{when}", author="agent", author_role=AuthorRole.AGENT, public=public,
                   body="Looking into it", created=at(when))


def requester_reply(when: str, n: int = 1) -> Comment:
    return Comment(id=f"r{n}-{when}", author="reporter", author_role=AuthorRole.REQUESTER, public=True,
                   body="More details", created=at(when))
