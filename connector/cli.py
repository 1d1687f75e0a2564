"""The `connector` command: serve, worker, sync, simulate, check-config, schema, report, demo, observed, doctor.

Every command that reads rules takes the config from `--config`, else `CONNECTOR_CONFIG`,
else the embedded standard process, and refuses to go on with a config that does not
validate: the error lists file:line, key path and what is allowed.

`connector doctor` checks a site and this host against the rules before going live.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from connector.config import ConfigError, load_config, schema_text
from connector.settings import Settings, SettingsError


class BadSettings(click.ClickException):
    """A wrong environment variable: the process was started wrongly, exit 2 like a usage error."""

    exit_code = 2


def _settings() -> Settings:
    """Settings from the environment, read once at start; a bad value (CONNECTOR_PUMP_INTERVAL=abc)
    stops the command with exit 2 and a message naming the variable and what it allows."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise BadSettings(str(exc))


def _observe(observe: bool) -> Settings:
    """Settings with `--observe` applied. The flag is put into the environment as
    CONNECTOR_MODE=observe, because the worker's runtime is built from the environment in
    the child processes that `serve` forks."""
    if observe:
        os.environ["CONNECTOR_MODE"] = "observe"
    settings = _settings()
    if settings.observing:
        click.echo("OBSERVE MODE: nothing is written to Jira or Zendesk; every action the rules plan is recorded "
                   "(`connector observed`, GET /observed). Reads still count toward the platform's rate limits.",
                   err=True)
    return settings


def _load(path: Path | None):
    settings = _settings()
    try:
        return load_config(path or settings.config_path)
    except ConfigError as exc:
        click.echo("The configuration is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


def _enable(config, rule_ids: tuple[str, ...]):
    """Dry-run rules that the file ships switched off (`enabled: false`) as if they were on."""
    known = {rule.id: rule for rule in config.rules}
    unknown = [rule_id for rule_id in rule_ids if rule_id not in known]
    if unknown:
        raise click.BadParameter(f"no rule with id {', '.join(map(repr, unknown))}; the rules are: "
                                 f"{', '.join(known)}", param_hint="--enable")
    for rule_id in rule_ids:
        known[rule_id].enabled = True
    return config


ENABLE_OPTION = click.option(
    "--enable", "enable_rules", multiple=True, metavar="RULE_ID",
    help="dry-run this rule as if it were enabled (repeatable; e.g. --enable problem-number)")


def _require_channels(config) -> None:
    """Every configured chat channel's variables are set (names them, never their values)."""
    from connector.channels.config import ChannelConfigError, require_environment

    try:
        require_environment(config.channels)
    except ChannelConfigError as exc:
        raise click.ClickException(str(exc))


def _parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        now = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 instant; write e.g. 2026-11-20T10:30:00+08:00")
    if now.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset; write e.g. 2026-11-20T10:30:00+08:00 or ...Z")
    return now


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Make every Jira or Zendesk ticket follow the standard technical-support process."""


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def check_config(path: Path | None) -> None:
    """Validate a rule file or directory (default: CONNECTOR_CONFIG or the embedded rules); exit 2 on error."""
    config = _load(path)
    kinds = ", ".join(f"{r.id} ({r.type}{', observed only' if r.mode == 'observe' else ''})" for r in config.rules)
    click.echo(f"OK: {len(config.rules)} rules: {kinds}; calendars: {', '.join(config.calendars) or 'none'}")
    from connector.channels.config import describe_missing, missing_environment

    # Rule files are checked where production secrets are not (CI, laptops): a channel's
    # unset variable is a warning here and an error when serve / worker start.
    missing = missing_environment(config.channels)
    if missing:
        click.echo(f"WARNING: {describe_missing(missing)} here; `connector serve` and `connector worker` "
                   "refuse to start without them.", err=True)


@main.command()
def schema() -> None:
    """Print the JSON Schema of rule files, for editor autocompletion."""
    click.echo(schema_text())


@main.command()
@click.option("--platform", "platforms", multiple=True, type=click.Choice(["jira", "zendesk"]),
              help="check this platform (default: every platform whose URL is set)")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="rule file or directory")
@click.option("--public-url", "public_url",
              help="the receiver's public base URL (default: CONNECTOR_PUBLIC_URL); the webhook must point at "
                   "<URL>/webhooks/<platform>")
@click.option("--project", "projects", multiple=True,
              help="Jira project key to check (repeatable; default: projects of recently updated issues)")
def doctor(platforms: tuple[str, ...], output: str, config_path: Path | None, public_url: str | None,
           projects: tuple[str, ...]) -> None:
    """Read-only preflight: check the site (credentials, permissions, fields, screens, statuses,
    transitions, priorities, groups, webhook) and this host (queue, calendars) against the rules.
    Writes nothing to the platform; exit 1 when a check FAILs."""
    from connector.doctor.checks import DoctorError, DoctorOptions, render_json, render_text
    from connector.doctor.runner import run_doctor

    config = _load(config_path)  # first: it also reports settings the environment gets wrong
    settings = _settings()
    try:
        report = run_doctor(settings, config, platforms,
                            DoctorOptions(public_url=public_url or settings.public_url, projects=tuple(p.upper() for p in projects)))
    except DoctorError as exc:
        raise click.UsageError(str(exc))  # exit 2: exit 1 means a check failed
    click.echo(render_json(report) if output == "json" else render_text(report))
    sys.exit(report.exit_code)


@main.command()
@click.option("--platform", type=click.Choice(["jira", "zendesk"]), required=True)
@click.option("--ticket-json", "ticket_json", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the platform's own REST JSON: a Jira issue fetched with expand=changelog, or a Zendesk ticket with its audits")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="rule file or directory")
@click.option("--now", "now_text", help="evaluate at this ISO 8601 instant (default: the current time)")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@ENABLE_OPTION
def simulate(platform: str, ticket_json: Path, config_path: Path | None, now_text: str | None, output: str,
             enable_rules: tuple[str, ...]) -> None:
    """Dry-run the rules on one ticket: print the plan, the SLA clocks and the next deadline. Writes nothing."""
    from connector.plan_output import plan_as_json, plan_as_text
    from connector.simulation import simulate_file

    config = _enable(_load(config_path), enable_rules)
    now = _parse_now(now_text)
    try:
        ticket, plan = simulate_file(platform, ticket_json, config, now)
    except ValueError as exc:
        raise click.ClickException(f"{ticket_json}: {exc}")
    observed = frozenset(r.id for r in config.rules if r.mode == "observe")
    if output == "json":
        click.echo(json.dumps(plan_as_json(ticket, plan, observed), indent=2, ensure_ascii=False))
    else:
        click.echo(plan_as_text(ticket, plan, observed))


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="rule file or directory")
@click.option("--now", "now_text", help="evaluate at this ISO 8601 instant (default: 2026-11-20T15:00+08:00, fits the examples)")
@click.option("--examples", "examples_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path(__file__).resolve().parent.parent / "examples", show_default=False)
@ENABLE_OPTION
def examples(config_path: Path | None, now_text: str | None, examples_dir: Path, enable_rules: tuple[str, ...]) -> None:
    """Simulate the bundled example tickets of both platforms and print their plans."""
    from connector.plan_output import plan_as_text
    from connector.simulation import simulate_file

    config = _enable(_load(config_path), enable_rules)
    now = _parse_now(now_text or "2026-11-20T15:00:00+08:00")
    switched_off = [rule.id for rule in config.rules if not rule.enabled]
    if switched_off:
        click.echo(f"(switched off in this configuration, so not shown: {', '.join(switched_off)}; "
                   f"add {' '.join(f'--enable {rule_id}' for rule_id in switched_off)} to see them)\n")
    for platform in ("jira", "zendesk"):
        for path in sorted((examples_dir / platform).glob("*.json")):
            ticket, plan = simulate_file(platform, path, config, now)
            click.echo(f"=== {platform}: {path.name}")
            click.echo(plan_as_text(ticket, plan))
            click.echo()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="receiver only; run `connector worker` elsewhere")
@click.option("--workers", default=2, show_default=True, type=int, help="worker threads of the in-process worker")
@click.option("--allow-unsigned", "allow_unsigned", multiple=True, type=click.Choice(["jira", "zendesk"]),
              help="accept unsigned webhooks from this platform (Jira Data Center without secrets); logged loudly")
@click.option("--observe", is_flag=True, help="write nothing, record every planned action (= CONNECTOR_MODE=observe)")
def serve(host: str, port: int, no_worker: bool, workers: int, allow_unsigned: tuple[str, ...], observe: bool) -> None:
    """Run the webhook receiver (waitress: whole requests are read before a thread serves them), with a queue worker unless --no-worker."""
    from connector.queue.storage import QueueConfigError
    from connector.serve import serve as run_serve

    settings = _observe(observe)
    _require_channels(_load(None))
    if not (settings.jira_webhook_secrets or settings.zendesk_webhook_secrets or allow_unsigned):
        raise click.ClickException(
            "no webhook secret is set: set JIRA_WEBHOOK_SECRET and/or ZENDESK_WEBHOOK_SECRET "
            "(the secret of the platform's webhook), or pass --allow-unsigned jira for a Jira Data Center "
            "webhook that cannot sign")
    from webhooks.state import SECRET_ENV_VARS, unsigned_platforms

    unsigned = unsigned_platforms(settings, frozenset(allow_unsigned))
    for platform in sorted(set(allow_unsigned)):
        if platform in unsigned:
            click.echo(f"WARNING: unsigned {platform} webhooks are accepted: anyone who can reach this port "
                       f"can make the connector re-read tickets. Set a secret as soon as the platform allows.",
                       err=True)
        else:  # the secret wins: the flag changes nothing, and saying otherwise would mislead
            click.echo(f"NOTE: --allow-unsigned {platform} is ignored: {SECRET_ENV_VARS[platform]} is set, so "
                       f"{platform} webhooks must be signed with it.", err=True)
    try:
        sys.exit(run_serve(settings, host, port, with_worker=not no_worker, workers=workers,
                           allow_unsigned=frozenset(allow_unsigned)))
    except QueueConfigError as exc:
        raise click.ClickException(str(exc))


@main.command()
@click.option("--workers", default=2, show_default=True, type=int, help="worker threads")
@click.option("--observe", is_flag=True, help="write nothing, record every planned action (= CONNECTOR_MODE=observe)")
def worker(workers: int, observe: bool) -> None:
    """Run queue workers alone (reconciles and SLA timers), for machines without a receiver."""
    from connector.queue.storage import QueueConfigError
    from connector.serve import worker as run_worker

    settings = _observe(observe)
    _require_channels(_load(None))
    try:
        sys.exit(run_worker(settings, workers))
    except QueueConfigError as exc:
        raise click.ClickException(str(exc))


@main.command()
@click.option("--once", is_flag=True, help="run one sweep and exit (for cron or a Kubernetes CronJob)")
@click.option("--platform", "platforms", multiple=True, type=click.Choice(["jira", "zendesk"]),
              help="sweep this platform (default: every platform whose URL is set)")
@click.option("--full", is_flag=True, help="all open and recently closed tickets, not only recent updates")
def sync(once: bool, platforms: tuple[str, ...], full: bool) -> None:
    """Sweep the platform: reconcile what webhooks missed and re-arm SLA timers.

    Tickets that need a write are queued for the worker (`connector serve` or `connector
    worker`), which also runs these sweeps periodically by itself.
    """
    from connector.platforms.base import PlatformError
    from connector.queue.reconcile_queue import ReconcileQueue
    from connector.queue.storage import QueueConfigError
    from connector.reconcile import build_runtime
    from connector.sync.scheduler import configured_platforms
    from connector.sync.state import SweepBusy
    from connector.sync.sweep import Sweeper, SweepKind

    if not once:
        raise click.UsageError("pass --once: `connector serve` and `connector worker` already sweep periodically")
    settings = _settings()
    config = _load(None)
    chosen = list(platforms) or configured_platforms(settings)
    if not chosen:
        raise click.ClickException("no platform to sweep: set JIRA_URL or ZENDESK_URL (and its credentials)")
    try:
        sweeper = Sweeper(build_runtime(settings, config), ReconcileQueue.from_settings(settings))
    except QueueConfigError as exc:
        raise click.ClickException(str(exc))
    kind = SweepKind.FULL if full else SweepKind.RECENT
    failed = False
    for platform in chosen:
        try:
            sweep = sweeper.start(platform, kind)
        except SweepBusy as exc:
            click.echo(f"{platform}: skipped, {exc}", err=True)
            failed = True
            continue
        try:
            with sweep, click.progressbar(sweep, label=f"{platform} {kind.value} sweep",
                                          item_show_func=lambda item: item.ticket_id if item else None) as bar:
                for _ in bar:
                    pass
        except PlatformError as exc:
            click.echo(f"{platform}: sweep stopped: {exc}; check the {platform.upper()}_* settings and retry",
                       err=True)
            failed = True
            continue
        r = sweep.report
        click.echo(f"{platform} {r.kind} sweep: {r.tickets} tickets, {r.evaluated} evaluated without a fetch "
                   f"({r.timers_armed} timers armed), {r.queued} queued for a reconcile ({r.collapsed} already "
                   f"waiting), {r.unchanged} unchanged, {r.skipped} skipped; {r.wall_seconds:.1f} s")
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--platform", type=click.Choice(["jira", "zendesk"]), required=True)
@click.option("--from", "date_from", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="first day of the period (YYYY-MM-DD, in the SLA calendar's time zone)")
@click.option("--to", "date_to", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="day after the period (exclusive): --from 2026-11-01 --to 2026-12-01 is November")
@click.option("--format", "output_format", type=click.Choice(["md", "csv", "html"]),
              help="default: from the --out suffix, else md")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="file to write (default: standard output)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="rule file or directory")
def report(platform: str, date_from: datetime, date_to: datetime, output_format: str | None, out: Path | None,
           config_path: Path | None) -> None:
    """Periodic review: volume, response and resolution times, SLA compliance, reopens, repeat
    problems, satisfaction and leftovers of [--from, --to), with the trend against the previous
    period of the same length. Reads the platform only; writes nothing to it."""
    from connector.platforms.base import PlatformError
    from connector.reconcile import build_adapter
    from connector.review.command import (
        ReportError,
        choose_format,
        make_report,
        missing_credentials,
        review_period,
        write_report,
    )

    settings = _settings()
    missing = missing_credentials(platform, settings)
    if missing:
        raise click.ClickException(f"cannot read {platform}: set {', '.join(missing)} in the environment"
                                   + (" (and JIRA_USER for Jira Cloud)" if platform == "jira" else ""))
    config = _load(config_path)
    chosen = choose_format(output_format, out)

    def progress(iterable, label: str = "", length: int | None = None):
        # On standard error, so `connector report > review.md` keeps the report clean.
        return click.progressbar(iterable, label=label, length=length, file=sys.stderr)

    try:
        period = review_period(config, date_from.date(), date_to.date())
        text, read = make_report(build_adapter(platform, settings, config), config, platform, period, chosen,
                                 progress=progress)
    except ReportError as exc:
        raise click.ClickException(str(exc))
    except PlatformError as exc:
        raise click.ClickException(f"{platform}: {exc}; check the {platform.upper()}_* settings and retry")
    write_report(text, chosen, out, lambda t: click.echo(t, nl=False))
    if out is not None:
        click.echo(f"{chosen} report of {read} tickets written to {out}", err=True)


@main.command()
@click.option("--observe", is_flag=True, help="the same stories in observe mode: nothing written, everything recorded")
def demo(observe: bool) -> None:
    """Run the standard process end to end on a sandbox Jira (local ports, temporary data); < 1 minute."""
    import logging

    from connector.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    sys.exit(run_demo(click.echo, observe=observe))


@main.command()
@click.option("--since", "since_text", help="ISO 8601 instant, or a duration back from now: 24h, 7d, 90m "
                                             "(default: everything kept, at most 30 days)")
@click.option("--platform", type=click.Choice(["jira", "zendesk"]))
@click.option("--format", "output", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="newest N records only")
def observed(since_text: str | None, platform: str | None, output: str, limit: int | None) -> None:
    """List what observe mode and rules in `mode: observe` would have written (newest first).

    Reads the queue's storage (CONNECTOR_DATA_DIR or CONNECTOR_QUEUE_URL), never the platform.
    """
    from connector.observe.present import as_csv, as_json, as_text, parse_since
    from connector.queue.reconcile_queue import ReconcileQueue
    from connector.queue.storage import QueueConfigError

    settings = _settings()
    since = None
    if since_text:
        try:
            since = parse_since(since_text, datetime.now(timezone.utc))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since")
    try:
        store = ReconcileQueue.from_settings(settings).observations
    except QueueConfigError as exc:
        raise click.ClickException(str(exc))
    rows = store.latest(since=since, platform=platform, limit=limit)
    render = {"text": as_text, "json": as_json, "csv": as_csv}[output]
    click.echo(render(rows), nl=output != "csv")


if __name__ == "__main__":  # pragma: no cover
    main()
