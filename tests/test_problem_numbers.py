"""Problem numbers: the rule (pure), the claim in the queue's storage (SQLite, Redis), and
the replacement of the plan's placeholder at apply time."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from connector.config import load_config
from connector.model import AddLabel, SetFields, Status
from connector.problem_numbers import DAY_KEY_TTL, assign
from connector.queue.reconcile_queue import ReconcileQueue
from connector.rules.engine import evaluate
from connector.rules.problem_number import NEXT_NUMBER, ProblemNumberRule
from connector.rules.projection import project
from connector.settings import DEFAULT_CONFIG, Settings
from tests.factories import at, ticket

FORK = multiprocessing.get_context("fork")


def enabled_config_file(directory: Path, source: Path = DEFAULT_CONFIG) -> Path:
    """The standard config with the (off by default) problem-number rule switched on."""
    text = source.read_text(encoding="utf-8")
    marker = "    type: problem-number\n    enabled: false\n"
    assert marker in text
    path = directory / "support.yaml"
    path.write_text(text.replace(marker, "    type: problem-number\n    enabled: true\n"), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path):
    return load_config(enabled_config_file(tmp_path))


def number_actions(plan):
    return [a for a in plan.actions if a.rule == "problem-number"]


# --- the rule (pure) --------------------------------------------------------------------------


def test_new_ticket_gets_a_placeholder_and_applying_it_settles(config):
    t = ticket()
    now = at("2026-11-20 09:05")
    plan = evaluate(t, now, config)
    [action] = number_actions(plan)
    assert isinstance(action, SetFields) and action.fields == {"problem_number": NEXT_NUMBER}
    # Idempotence: once the field holds the number (here: whatever was written), nothing more.
    done = project(t, [SetFields(rule="problem-number", reason="x", fields={"problem_number": "TS20261120001"})], now)
    assert number_actions(evaluate(done, now, config)) == []
    assert number_actions(evaluate(project(t, plan.actions, now), now, config)) == []


@pytest.mark.parametrize("case", ["has_number", "resolved", "closed", "disabled", "unmapped"])
def test_rule_does_not_fire(case, tmp_path):
    config = load_config(enabled_config_file(tmp_path) if case != "disabled" else DEFAULT_CONFIG)
    fields = {"problem_number": "TS20261119007"} if case == "has_number" else None
    status = {"resolved": Status.RESOLVED, "closed": Status.CLOSED}.get(case, Status.NEW)
    if case == "unmapped":
        del config.platforms.jira.fields["problem_number"]
    t = ticket(status=status, fields=None if fields is None else {**ticket().fields, **fields})
    assert number_actions(evaluate(t, at("2026-11-20 09:05"), config)) == []


def test_blank_field_counts_as_missing(config):
    t = ticket(fields={**ticket().fields, "problem_number": "   "})
    assert number_actions(evaluate(t, at("2026-11-20 09:05"), config))


def test_standard_configs_ship_the_rule_switched_off():
    for name in ("standard-support.yaml", "standard-support.zh-CN.yaml"):
        [rule] = [r for r in load_config(DEFAULT_CONFIG.parent / name).rules if r.type == "problem-number"]
        assert rule.id == "problem-number" and rule.enabled is False and rule.prefix == "TS"


def test_date_format_must_name_the_day():
    with pytest.raises(ValidationError, match="must print year, month and day"):
        ProblemNumberRule(id="pn", calendar="standard", date_format="%Y%m")
    rule = ProblemNumberRule(id="pn", calendar="standard", prefix="INC-", date_format="%y%m%d-", width=4)
    assert rule.number(date(2024, 5, 20), 1) == "INC-240520-0001"
    assert ProblemNumberRule(id="pn", calendar="standard").number(date(2024, 5, 20), 1) == "TS20240520001"


def test_unknown_calendar_is_reported_at_load(tmp_path):
    path = enabled_config_file(tmp_path)
    path.write_text(path.read_text().replace("    width: 3\n    calendar: standard\n",
                                             "    width: 3\n    calendar: nowhere\n"))
    with pytest.raises(Exception, match="calendar 'nowhere' is not defined"):
        load_config(path)


# --- the claim in the queue's storage --------------------------------------------------------


@pytest.fixture
def store(queue):
    return queue.problem_numbers


def test_claims_follow_the_sequence_and_a_ticket_keeps_its_number(store):
    day = date(2026, 11, 20)
    assert store.claim("jira", "1", "pn", "TS20261120", day, 3) == "TS20261120001"
    assert store.claim("zendesk", "1", "pn", "TS20261120", day, 3) == "TS20261120002"
    # Claimed again (the write failed, the worker died): the same number, the sequence stays.
    assert store.claim("jira", "1", "pn", "TS20261120", day, 3) == "TS20261120001"
    assert store.claim("jira", "2", "pn", "TS20261120", day, 3) == "TS20261120003"
    assert store.recorded("jira", "1", "pn") == "TS20261120001"
    # Another prefix is another sequence.
    assert store.claim("jira", "3", "other", "INC20261120", day, 3) == "INC20261120001"


def test_claims_are_unique_across_threads(store, settings):
    day, found, errors = date(2026, 11, 20), [], []
    stores = [store, ReconcileQueue.from_settings(settings).problem_numbers]  # two connections too

    def claim(n: int) -> None:
        try:
            for i in range(20):
                found.append(stores[n % 2].claim("jira", f"{n}-{i}", "pn", "TS20261120", day, 3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(found) == [f"TS20261120{n:03d}" for n in range(1, 121)]


def _claim_in_process(settings: Settings, index: int, results) -> None:
    store = ReconcileQueue.from_settings(settings).problem_numbers
    numbers = [store.claim("zendesk", f"{index}-{i}", "pn", "TS20261120", date(2026, 11, 20), 3)
               for i in range(25)]
    # Every process also claims for one shared ticket: all must get the same number.
    numbers.append(("shared", store.claim("jira", "shared", "pn", "TS20261120", date(2026, 11, 20), 3)))
    results.put(numbers)


def claims_in_processes(settings: Settings, count: int = 3) -> list:
    results = FORK.Queue()
    processes = [FORK.Process(target=_claim_in_process, args=(settings, i, results)) for i in range(count)]
    for process in processes:
        process.start()
    found = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(10)
        assert process.exitcode == 0
    return found


def check_process_claims(found: list, count: int = 3) -> None:
    shared = {n[1] for numbers in found for n in numbers if isinstance(n, tuple)}
    plain = [n for numbers in found for n in numbers if not isinstance(n, tuple)]
    assert len(shared) == 1
    assert sorted(plain + list(shared)) == [f"TS20261120{n:03d}" for n in range(1, 25 * count + 2)]


def test_claims_are_unique_across_processes_on_sqlite(settings, store):
    store.claim("jira", "warm-up", "pn", "TS20261119", date(2026, 11, 19), 3)  # tables exist before the fork
    check_process_claims(claims_in_processes(settings))


def test_claims_are_unique_across_processes_on_redis(redis_server, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", queue_url=redis_server.url)
    store = ReconcileQueue.from_settings(settings).problem_numbers
    store.clear()
    check_process_claims(claims_in_processes(settings))
    assert store.claim("zendesk", "0-0", "pn", "TS20261120", date(2026, 11, 20), 3) == \
        store.recorded("zendesk", "0-0", "pn")  # kept, not claimed again
    import redis

    conn = redis.Redis.from_url(redis_server.url)
    [day_key] = list(conn.scan_iter(match="*problem.seq:TS20261120:*"))
    assert 0 < conn.ttl(day_key) <= DAY_KEY_TTL.total_seconds()
    assert int(conn.get(day_key)) == 76


# --- the placeholder replaced at apply time ---------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        return ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data")).problem_numbers
    server = request.getfixturevalue("redis_server")
    store = ReconcileQueue.from_settings(Settings(data_dir=tmp_path / "data", queue_url=server.url)).problem_numbers
    store.clear()
    return store


def test_assign_claims_in_the_calendars_day_and_restarts_every_day(config, any_store):
    store = any_store
    t = ticket()
    # 23:59 in Shanghai is 15:59 UTC: still the 20th; two minutes later the 21st begins.
    late = datetime(2026, 11, 20, 15, 59, tzinfo=timezone.utc)
    plan = evaluate(t, late, config)
    assigned, warnings = assign(store, t, plan, config, late)
    assert warnings == []
    assert number_actions(assigned)[0].fields == {"problem_number": "TS20261120001"}
    assert [a for a in assigned.actions if a.rule != "problem-number"] == \
        [a for a in plan.actions if a.rule != "problem-number"]
    t2 = t.model_copy(update={"id": "10002", "key": "SUP-2"})
    after_midnight = late + timedelta(minutes=2)
    assigned2, _ = assign(store, t2, evaluate(t2, after_midnight, config), config, after_midnight)
    assert number_actions(assigned2)[0].fields == {"problem_number": "TS20261121001"}
    # The first ticket's write failed: re-planned the next day it keeps the 20th's number.
    again, _ = assign(store, t, evaluate(t, after_midnight, config), config, after_midnight)
    assert number_actions(again)[0].fields == {"problem_number": "TS20261120001"}


def test_a_failed_claim_leaves_the_field_out_and_says_so(config, metric):
    class Down:
        def claim(self, *args):
            raise ConnectionError("storage down")

    t = ticket()
    now = at("2026-11-20 09:05")
    plan = evaluate(t, now, config)
    before = metric("connector_writes_refused_total", platform="jira", what="problem_number")
    assigned, warnings = assign(Down(), t, plan, config, now)
    assert number_actions(assigned) == []
    assert len(assigned.actions) == len(plan.actions) - 1
    assert warnings and "problem number not assigned" in warnings[0]
    assert metric("connector_writes_refused_total", platform="jira", what="problem_number") == before + 1


def test_plans_without_the_placeholder_pass_unchanged(config, store):
    t = ticket()
    plan = evaluate(t, at("2026-11-20 09:05"), load_config(DEFAULT_CONFIG))
    assert assign(store, t, plan, config, at("2026-11-20 09:05")) == (plan, [])
    other = plan.model_copy(update={"actions": [AddLabel(rule="x", reason="y", label="z")]})
    assert assign(store, t, other, config, at("2026-11-20 09:05"))[0] is other


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_simulate_shows_the_next_number_without_claiming(platform, tmp_path):
    import json

    from click.testing import CliRunner

    from connector.cli import main

    example = DEFAULT_CONFIG.parent.parent / "examples" / platform / "p2-missing-intake-fields.json"
    result = CliRunner().invoke(main, ["simulate", "--platform", platform, "--ticket-json", str(example),
                                       "--config", str(enabled_config_file(tmp_path)), "--now",
                                       "2026-11-20T15:00:00+08:00", "--format", "json"])
    assert result.exit_code == 0, result.output
    [action] = [a for a in json.loads(result.output)["actions"] if a["rule"] == "problem-number"]
    assert action["type"] == "set-fields" and action["fields"] == {"problem_number": NEXT_NUMBER}
