"""`GET /observed`: the latest actions observe mode would have written, as a small HTML page.

Read-only, and like `/metrics` it carries no authentication of its own: it belongs behind
the same network boundary (scraped or viewed from inside; only `/webhooks/*` is exposed
through the Ingress or reverse proxy, see deploy/kubernetes.yaml). It shows ticket text
(comment bodies the rules would post, which quote summaries and fields customers wrote), so
everything is HTML-escaped by Jinja2's autoescape, and the response forbids scripts,
framing and content sniffing (Content-Security-Policy `default-src 'none'`): hostile ticket
text can neither inject markup nor run.

Query: `platform=jira|zendesk`, `since=24h|7d|<ISO 8601>`, `limit` (default 200, at most 1000).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from jinja2 import Environment, select_autoescape

from connector.observe.present import parse_since
from webhooks.state import receiver_state

log = logging.getLogger(__name__)

blueprint = Blueprint("observed", __name__)

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
# `default-src 'none'` blocks scripts, images, frames and connections the page never needs
# (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy/default-src);
# only the inline style block is allowed. Escaping is the defence, the policy the second line.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Observed actions</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.body{white-space:pre-wrap;max-width:48em}.muted{color:#777}
</style></head><body>
<h1>Observed actions</h1>
<p>What the connector would have written{% if platform %} on {{ platform }}{% endif %}{% if since %} since {{ since }}{% endif %}:
{{ rows|length }} shown, newest first. Nothing here was written to the platform.
This process runs in <strong>{{ mode }}</strong> mode; rules in <code>mode: observe</code> are recorded here in either mode.</p>
{% if error %}<p><strong>{{ error }}</strong></p>{% endif %}
<table><thead><tr><th>last seen (UTC)</th><th>ticket</th><th>rule</th><th>action</th><th>what</th><th>why</th><th>times</th><th>first seen (UTC)</th></tr></thead>
<tbody>
{% for row in rows %}<tr>
<td>{{ row.last_seen.strftime("%Y-%m-%d %H:%M:%S") }}</td>
<td>{{ row.platform }} {{ row.ticket_key }}</td>
<td>{{ row.rule }}</td>
<td>{{ row.action }}{% if row.marker %}<br><span class="muted">{{ row.marker }}</span>{% endif %}</td>
<td class="body">{% if row.action == "comment" %}{{ "public comment" if row.details.public else "internal note" }}:
{{ row.details.body }}{% else %}{{ row.summary() }}{% endif %}</td>
<td>{{ row.reason }}</td>
<td>{{ row.times }}</td>
<td>{{ row.first_seen.strftime("%Y-%m-%d %H:%M:%S") }}</td>
</tr>{% else %}<tr><td colspan="8" class="muted">nothing observed</td></tr>{% endfor %}
</tbody></table>
</body></html>
""")


def _limit(text: str | None) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(text))) if text else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT


@blueprint.get("/observed")
def observed() -> ResponseReturnValue:
    state = receiver_state()
    platform = request.args.get("platform") if request.args.get("platform") in ("jira", "zendesk") else None
    since_text = request.args.get("since") or None
    error, since = None, None
    if since_text:
        try:
            since = parse_since(since_text, datetime.now(timezone.utc))
        except ValueError as exc:
            error, since_text = str(exc), None
    status = 200
    try:
        rows = state.queue.observations.latest(since=since, platform=platform, limit=_limit(request.args.get("limit")))
    except Exception as exc:  # QueueUnavailable, a locked SQLite file, Redis down: say why, not a bare 500
        log.warning("observed.unavailable", extra={"error": type(exc).__name__})
        rows, error, status = [], "the queue storage cannot be read right now; see /readyz", 503
    html = _PAGE.render(rows=rows, platform=platform, since=since_text, mode=state.settings.mode, error=error)
    return Response(html, status=status, content_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
