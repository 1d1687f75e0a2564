"""`connector doctor`: a read-only preflight of a site against the loaded rules.

- `checks`: the Check result (id, OK/WARN/FAIL, found, fix), the runner that picks the
  platforms (`--platform`, else those whose URL is set), text and JSON output, exit code;
- `needs`: what the enabled rules ask of any platform, in logical names (fields read and
  written and in which statuses, transitions, priorities, groups, assignees, internal
  notes, answers a dropdown must offer), from the config alone;
- `local`: the host (queue storage, calendars' holiday data);
- `platform`: `PlatformDoctor`, what the platform doctors share (run order, guard, the
  per-field loop, webhook URL match, priority verdict);
- one module per platform with `run(settings, config, options) -> list[Check]`, registered
  in `runner.PLATFORM_CHECKS` (`jira`, `zendesk`). Check ids start with the
  platform (`jira.field.root_cause`); a check that could not be made is a WARN saying what
  to verify by hand; an unexpected read failure fails its own check, not the run.

The doctor never writes to a platform: every request it sends is a GET (the Jira module
reads through `JiraAdapter.read_json`, which has no other verb).
"""
