"""The marker a connector comment carries in its own body, so the comment records itself.

On Jira a one-time comment (intake request, SLA notice, reminder …) and the marker label
that records it cannot travel in one documented request: internal notes must be posted
through the comment endpoint, and a status with `jira.issue.editable=false` takes comments
but no label. So the comment carries its marker as a last line::

    Please add the exact error text.

    ref: sc-intake-requested

The form is chosen to survive REST v2 rich text both ways: plain words, no wiki markup
characters around the marker (`[…]` is a link, `{…}` a macro, `*…*`/`_…_` emphasis), on
a line of its own so Cloud's wiki↔ADF conversion keeps it a paragraph. Reading tolerates
the backslash escapes that conversion may add (`sc\\_x`). A customer reads it as a
reference, which it is.

Only comments written by the connector's own account may carry a marker that counts (the
parser checks the author), so a customer cannot suppress an action by pasting the line.
"""

from __future__ import annotations

import re

PREFIX = "ref:"
_TRAILER = re.compile(r"^ref:\s*([A-Za-z0-9][A-Za-z0-9_.:-]*)\s*$")


def with_marker(body: str, marker: str) -> str:
    """`body` with the marker trailer as its last line."""
    return f"{body.rstrip()}\n\n{PREFIX} {marker}"


def carried_marker(body: str | None) -> str | None:
    """The marker of a body that ends in a trailer, else None."""
    if not body:
        return None
    lines = [line for line in body.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        return None
    match = _TRAILER.match(lines[-1].strip().replace("\\", ""))
    return match.group(1) if match else None
