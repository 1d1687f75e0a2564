"""Checks of the host, whatever the platform: the queue's storage and the calendars' holidays.

- Queue: without `CONNECTOR_QUEUE_URL` the queue is a SQLite file in `CONNECTOR_DATA_DIR`,
  which must be a writable directory (or creatable). With Redis the server must answer and
  keep what it is given across a restart: huey keeps pending reconciles and SLA timers in
  Redis, and without persistence a restart loses them until the next full sweep. Redis's
  append-only file is the durable option ("Redis persistence", redis.io/docs/latest/
  operate/oss_and_stack/management/persistence/: RDB snapshots lose the writes since the
  last snapshot, AOF with fsync everysec loses at most a second), so `appendonly yes` is
  OK, anything else a WARN; a managed Redis that refuses `CONFIG GET` is a WARN too.
- Calendar: the `holidays` package knows a country's holidays for a range of years
  (`start_year`..`end_year`), but countries that announce their schedule every year (China
  publishes its holidays and make-up working days each November or December) only have
  them for the years the installed package version already lists in its
  `special_public_holidays` table. A year outside the range is a FAIL; an annual schedule
  not in the package for the current year is a FAIL, for next year a WARN (it may simply
  not be published yet), unless the calendar lists its own `extra_holidays` or
  `extra_workdays` for that year.
- Team chat: every channel under `channels:` has its environment variables set (the names are
  shown, never the values); nothing is sent.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import holidays

from connector.config import SupportConfig
from connector.doctor.checks import Check, DoctorOptions
from connector.settings import Settings

QUEUE_FILE = "queue.db"
REDIS_TIMEOUT_SECONDS = 3.0
# Years in a row a country must have special days for to count as announcing them yearly.
ANNUAL_RUN = 3


def run(settings: Settings, config: SupportConfig, options: DoctorOptions) -> list[Check]:
    return [check_queue(settings), *check_calendars(config, options.now or datetime.now(timezone.utc)),
            *check_channels(config)]


# --- team-chat channels ----------------------------------------------------------------------


def check_channels(config: SupportConfig, environ=None) -> list[Check]:
    """Each `channels:` entry's variables are set here. Only names are shown, never values: a
    webhook URL carries its token. Nothing is sent (a test message would reach a real group)."""
    from connector.channels.config import missing_environment

    checks = []
    for name, channel in config.channels.items():
        cid = f"chat.{name}"
        missing = [var for _, var in missing_environment({name: channel}, environ)]
        if missing:
            checks.append(Check.fail(cid, f"{channel.preset} channel '{name}': {', '.join(missing)} not set",
                                     f"set {' and '.join(missing)} to the webhook URL / signing secret the "
                                     f"{channel.preset} robot was created with (serve and worker refuse to start "
                                     "without them), or remove the channel"))
        else:
            checks.append(Check.ok(cid, f"{channel.preset} channel '{name}': {', '.join(channel.variables())} set"))
    return checks


# --- the queue ---------------------------------------------------------------------------


def check_queue(settings: Settings) -> Check:
    if not settings.queue_url:
        return _check_sqlite(settings.data_dir)
    return _check_redis(settings.queue_url)


def _check_sqlite(data_dir: Path) -> Check:
    cid = "queue.sqlite"
    where = data_dir.resolve()
    existing = where
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != where and not existing.is_dir():
        return Check.fail(cid, f"CONNECTOR_DATA_DIR {where} cannot be created: {existing} is not a directory",
                          "point CONNECTOR_DATA_DIR at a writable directory")
    if existing == where and not where.is_dir():
        return Check.fail(cid, f"CONNECTOR_DATA_DIR {where} is a file, not a directory",
                          "point CONNECTOR_DATA_DIR at a writable directory")
    try:
        # A real write, not os.access: read-only mounts and ACLs fool access().
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check.fail(cid, f"cannot write in {existing}: {exc.strerror}",
                          f"make {where} writable by the connector's user (chown/chmod), "
                          "or set CONNECTOR_DATA_DIR to a writable directory")
    queue_file = where / QUEUE_FILE
    if queue_file.exists() and not os.access(queue_file, os.R_OK | os.W_OK):
        return Check.fail(cid, f"{queue_file} exists but is not readable and writable",
                          f"chown {queue_file} to the connector's user")
    state = "exists" if queue_file.exists() else ("will be created" if existing == where
                                                  else f"will be created with {where}")
    return Check.ok(cid, f"SQLite queue {queue_file} {state}; the directory is writable "
                         "(one host only: use Redis to run several workers)")


def _check_redis(url: str) -> Check:
    cid = "queue.redis"
    parts = urlsplit(url)
    # Only host and port are shown: the URL may carry a password.
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return Check.fail(cid, f"CONNECTOR_QUEUE_URL has the unsupported scheme {parts.scheme!r}",
                          "use redis://host:6379/0 (or rediss://), or unset it for the SQLite file")
    try:
        import redis
    except ImportError:
        return Check.fail(cid, "CONNECTOR_QUEUE_URL points at Redis but the 'redis' package is not installed",
                          "pip install redis")
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                  socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    try:
        client.ping()
    except redis.AuthenticationError:
        return Check.fail(cid, f"Redis at {shown} refused the credentials in CONNECTOR_QUEUE_URL",
                          "fix the password/user in CONNECTOR_QUEUE_URL")
    except redis.RedisError as exc:
        return Check.fail(cid, f"Redis at {shown} does not answer ({type(exc).__name__})",
                          "start Redis or fix host/port in CONNECTOR_QUEUE_URL")
    try:
        appendonly = (client.config_get("appendonly") or {}).get("appendonly")
    except redis.RedisError:
        return Check.warn(cid, f"Redis at {shown} answers but does not let us read CONFIG (managed Redis?)",
                          "make sure the server persists with the append-only file (appendonly yes), or queued "
                          "reconciles and SLA timers are lost on a Redis restart until the next full sweep")
    finally:
        client.close()
    if appendonly != "yes":
        return Check.warn(cid, f"Redis at {shown} answers, appendonly is {appendonly!r}: a Redis restart loses "
                               "queued reconciles and SLA timers until the next full sweep",
                          "set `appendonly yes` in redis.conf (and `CONFIG SET appendonly yes` on the running server)")
    return Check.ok(cid, f"Redis at {shown} answers and persists with the append-only file")


# --- the calendars -----------------------------------------------------------------------


def check_calendars(config: SupportConfig, now: datetime) -> list[Check]:
    checks = []
    years = (now.year, now.year + 1)
    for name, calendar in config.calendars.items():
        cid = f"calendar.{name}.holidays"
        source = calendar.holidays
        if source is None:
            checks.append(Check.ok(cid, f"calendar {name!r} observes no public holidays (only its extra_holidays)"))
            continue
        package = holidays.country_holidays(source.country, subdiv=source.subdivision, years=[])
        own = {d.year for d in (*calendar.extra_holidays, *calendar.extra_workdays)}
        announced = sorted(getattr(package, "special_public_holidays", {}) or {})
        annual = _announces_yearly(announced)
        problems: list[Check] = []
        for year in years:
            what = f"calendar {name!r} ({source.country}): holidays {holidays.__version__}"
            if not package.start_year <= year <= package.end_year:
                problems.append(Check.fail(cid, f"{what} knows {source.country} only for "
                                                f"{package.start_year}-{package.end_year}, not {year}",
                                           "upgrade the holidays package (pip install -U holidays)"))
            elif annual and year > announced[-1] and year not in own:
                found = (f"{what} has no announced {source.country} schedule (holidays moved, make-up workdays) "
                         f"for {year}; the last one it knows is {announced[-1]}")
                fix = ("upgrade the holidays package once the schedule is published (pip install -U holidays), "
                       f"or list {year}'s days under extra_holidays/extra_workdays of calendar {name!r}")
                problems.append(Check.fail(cid, found, fix) if year == now.year else Check.warn(cid, found, fix))
        if problems:
            checks.extend(problems)
        else:
            checks.append(Check.ok(cid, f"calendar {name!r} ({source.country}) has holiday data for "
                                        f"{years[0]} and {years[1]} (holidays {holidays.__version__})"))
    return checks


def _announces_yearly(years: list[int]) -> bool:
    """True when the last ANNUAL_RUN years with special days follow each other."""
    tail = years[-ANNUAL_RUN:]
    return len(tail) == ANNUAL_RUN and tail == list(range(tail[0], tail[0] + ANNUAL_RUN))
