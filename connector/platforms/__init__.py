"""The platform adapters: everything that talks to Jira or Zendesk, and nothing else does.

One package per platform (`jira/`, `zendesk/`), each with a thin HTTP client, a reader
and parser, a writer and a search module. What both platforms do the same way lives here
once: the error taxonomy, the retry policy and the result types (`base`), the request
wrapper and API-call counting (`transport`), turning a plan into writes (`writes`,
`labels`), the comment marker (`comment_marker`), field values (`field_values`,
`formats`), the mapping (`mapping`), and small bounded memories (`memory`).
"""
