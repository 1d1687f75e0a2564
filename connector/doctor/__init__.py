"""`connector doctor`: a read-only preflight of a site against the loaded rules.

- `checks`: the Check result, the runner that picks platforms, text and JSON output;
- `needs`: what the rules ask of any platform (fields, statuses, groups …), from the config;
- `local`: the host (queue storage, calendars' holiday data);
- one module per platform (`jira`; Zendesk's comes next) with `run(settings, config, options)`.

The doctor never writes to a platform: every request it sends is a GET.
"""
