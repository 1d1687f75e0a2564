"""Comment texts as sandboxed Jinja2 templates.

Admins write the words the connector posts, in their own language, in the rule files that
live in git. A sandboxed environment keeps a template from reaching Python internals, and
strict undefined variables turn a misspelt placeholder into a config error at load time
instead of a broken comment on a customer's ticket.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=512)
def _compiled(source: str):
    template = _ENV.from_string(source)
    # Jinja merges a template's globals (a ChainMap over the environment's) into every
    # render's context by iterating the ChainMap in Python; a plain dict copies at C speed.
    # Nothing adds globals after start-up, so the snapshot is the same mapping.
    template.globals = dict(template.globals)
    return template


def render(source: str, context: dict[str, Any]) -> str:
    """Render a comment template; raises jinja2.TemplateError on a bad template."""
    return _compiled(source).render(**context).strip()


def check(source: str, sample_context: dict[str, Any]) -> str | None:
    """Return a readable problem with the template, or None when it renders on a sample ticket."""
    try:
        render(source, sample_context)
    except TemplateError as exc:
        where = f" (template line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return f"template does not render{where}: {exc.message or exc}"
    return None


def ticket_context(ticket) -> dict[str, Any]:
    """The `ticket` variable every template can use."""
    return {
        "key": ticket.key,
        "id": ticket.id,
        "url": ticket.url or "",
        "summary": ticket.summary,
        "category": ticket.category or "",
        "priority": ticket.priority or "",
        "status": ticket.status.value,
        "reporter": ticket.reporter or "",
        "assignee": ticket.assignee or "",
        "group": ticket.group or "",
        "platform": ticket.platform,
    }


SAMPLE_TICKET = {
    "key": "SUP-1", "id": "10001", "url": "https://example.atlassian.net/browse/SUP-1",
    "summary": "VPN drops every hour", "category": "network", "priority": "P1",
    "status": "new", "reporter": "reporter", "assignee": "agent", "group": "L1", "platform": "jira",
}
SAMPLE_CLOCK = {
    "metric": "first_response", "metric_label": "first response", "target": "2h",
    "elapsed": "1h 30m", "remaining": "30m", "due": "2026-11-20 11:00 CST", "percent": 75,
    "breached_at": "2026-11-20 11:00 CST", "cycle": 0,
}
