"""The one-pass SLA computation gives exactly the clocks the per-metric one gave.

`tests/sla_reference.py` is the implementation before the rewrite, kept verbatim. Hypothesis
generates tickets with arbitrary histories (changes before creation, ties, reopens, pauses,
changes after `now`), comments of every role and visibility, and instants in several zones
across daylight-saving changes and public holidays; every metric must agree field by field
(time zones of the reported instants included), and so must the timeline's answers that
escalation reads.

Ticket instants carry fixed UTC offsets, as the platform parsers deliver them
(`parse_time`: ISO 8601 with an offset). With a shared `ZoneInfo` object on both sides,
Python compares datetimes by wall clock, not by instant, which for a wall time inside a
daylight-saving gap or fold differs; the one-pass code compares instants there.

The reference judged a ticket whose history continues after `now` by today's status (a
resolution made the next day looked "met"; the periodic update followed the current
status). The one-pass code cuts the history at `now` (issue 14, point 7), so both are
handed the ticket as it stood at `now` (`ticket_as_of`); the one-pass code is also run on
the uncut ticket and must give the same clocks – `tests/test_clocks_at_now.py` tests that
property on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.calendar import ContinuousCalendar, parse_duration
from connector.config import load_config
from connector.history import ticket_as_of
from connector.model import AuthorRole, Comment, StatusChange, Status, Ticket
from connector.rules.base import EvalContext
from connector.settings import DEFAULT_CONFIG
from connector.sla import MetricTarget, build_clock, compute_clocks
from tests import sla_reference
from tests.test_calendar import BERLIN_NIGHT_DESK, LORD_HOWE_DESK, NEW_YORK_OFFICE, ZONES

CONFIG = load_config(DEFAULT_CONFIG)
STANDARD = CONFIG.calendar("standard")  # Asia/Shanghai, lunch break, CN holidays and make-up days
CALENDARS = [STANDARD, NEW_YORK_OFFICE, BERLIN_NIGHT_DESK, LORD_HOWE_DESK]
METRICS = ("first_response", "resolution", "periodic_update")
PAUSE_SETS = [
    frozenset({Status.WAITING_FOR_CUSTOMER, Status.WAITING_FOR_THIRD_PARTY, Status.WAITING_FOR_INFORMATION}),
    frozenset(),
    frozenset({Status.NEW}),
]

instants = st.datetimes(min_value=datetime(2025, 12, 20), max_value=datetime(2027, 1, 10),
                        timezones=st.sampled_from(ZONES))
offsets = st.integers(-600, 60 * 24 * 40)  # minutes from creation; some before it


def fixed(moment: datetime) -> datetime:
    """The instant with its zone's offset at that instant, as `2026-03-08T03:00:00-04:00` reads."""
    moment = moment.astimezone(timezone.utc).astimezone(moment.tzinfo)  # a wall time in a gap: the real instant
    return moment.astimezone(timezone(moment.utcoffset()))


@st.composite
def tickets(draw) -> tuple[Ticket, datetime]:
    created = fixed(draw(instants))
    zone = draw(st.sampled_from(ZONES))

    def moment(minutes: int) -> datetime:
        # Whole minutes, sometimes with seconds, in any zone's offset: platforms send all of these.
        return fixed((created + timedelta(minutes=minutes, seconds=draw(st.sampled_from([0, 0, 30])))).astimezone(zone))

    statuses = list(Status)
    history = tuple(
        StatusChange(at=moment(draw(offsets)), from_status=draw(st.one_of(st.none(), st.sampled_from(statuses))),
                     to_status=draw(st.sampled_from(statuses)))
        for _ in range(draw(st.integers(0, 6))))
    if history and draw(st.booleans()):  # two changes in the same instant keep their order
        history += (StatusChange(at=history[-1].at, from_status=history[-1].to_status,
                                 to_status=draw(st.sampled_from(statuses))),)
    comments = tuple(
        Comment(id=str(i), author_role=draw(st.sampled_from(list(AuthorRole))), public=draw(st.booleans()),
                created=moment(draw(offsets)))
        for i in range(draw(st.integers(0, 5))))
    ticket = Ticket(platform="jira", id="1", key="SUP-1", priority="P1", status=draw(st.sampled_from(statuses)),
                    created=created, status_history=history, comments=comments)
    now = moment(draw(st.integers(0, 60 * 24 * 45)))
    return ticket, now


def dump(clock) -> str:
    return clock.model_dump_json()


def instants_of(clock) -> list[str | None]:
    """Reported instants with their offsets: the same instant in another zone is a difference."""
    return [d.isoformat() if d else None for d in (clock.started, clock.due, clock.breached_at, clock.stopped_at,
                                                   *clock.warn_at)]


@settings(max_examples=400, deadline=None)
@given(tickets(), st.sampled_from(CALENDARS), st.sampled_from(PAUSE_SETS),
       st.lists(st.integers(0, 3000), min_size=3, max_size=3), st.sampled_from(["business", "calendar"]),
       st.lists(st.integers(1, 99), max_size=3, unique=True))
def test_one_pass_equals_the_previous_per_metric_clocks(case, calendar, paused, targets, kind, warn):
    full, now = case
    ticket = ticket_as_of(full, now)  # the reference did not cut: see the module docstring
    chosen = ContinuousCalendar() if kind == "calendar" else calendar
    warn = sorted(warn)
    prepared = [MetricTarget(metric, minutes, kind, chosen) for metric, minutes in zip(METRICS, targets)]
    computed = compute_clocks(ticket, now, prepared, paused=paused, warn_percents=warn)
    uncut = compute_clocks(full, now, prepared, paused=paused, warn_percents=warn)
    assert {m: dump(c) for m, (c, _) in uncut.items()} == {m: dump(c) for m, (c, _) in computed.items()}
    for target in prepared:
        expected = sla_reference.build_clock(target.metric, ticket, now, target_minutes=target.target_minutes,
                                             clock=kind, calendar=chosen, paused=paused, warn_percents=warn)
        single = build_clock(target.metric, ticket, now, target_minutes=target.target_minutes, clock=kind,
                             calendar=chosen, paused=paused, warn_percents=warn)
        if expected is None:
            assert target.metric not in computed and single is None
            continue
        old_clock, old_timeline = expected
        for clock, timeline in (computed[target.metric], single):
            assert dump(clock) == dump(old_clock)
            assert instants_of(clock) == instants_of(old_clock)
            assert clock == old_clock
            assert timeline.running == old_timeline.running
            assert timeline.elapsed() == old_timeline.elapsed()
            for share in (1, 25, 50, 75, 100, 150):
                minutes = target.target_minutes * share / 100
                new, old = timeline.reached_at(minutes), old_timeline.reached_at(minutes)
                assert (new.isoformat() if new else None) == (old.isoformat() if old else None)


def test_the_rule_prepares_its_targets_once_and_matches_the_reference():
    """The sla rule's clocks (targets parsed at load time) equal the reference's for every priority."""
    rule = next(r for r in CONFIG.rules if r.id == "sla")  # the default tier, on the standard calendar
    created = datetime(2026, 11, 20, 9, 0, tzinfo=ZONES[2])
    comments = (Comment(id="1", author_role=AuthorRole.AGENT, created=created + timedelta(hours=3)),)
    for priority, targets in rule.targets.items():
        ticket = Ticket(platform="zendesk", id="2", key="#2", priority=priority, status=Status.IN_PROGRESS,
                        created=created, comments=comments)
        now = created + timedelta(days=2)
        clocks = rule.clocks(EvalContext(ticket=ticket, now=now, config=CONFIG))
        assert set(clocks) == {m for m in METRICS if getattr(targets, m) is not None}
        for metric, (clock, _) in clocks.items():
            target = getattr(targets, metric)
            calendar = ContinuousCalendar() if target.clock == "calendar" else STANDARD
            minutes = round(parse_duration(target.within, STANDARD))
            old, _ = sla_reference.build_clock(metric, ticket, now, target_minutes=minutes, clock=target.clock,
                                               calendar=calendar, paused=frozenset(rule.pause_statuses),
                                               warn_percents=rule.warn_at)
            assert dump(clock) == dump(old)


# --- plans and clocks built without validation are the validated ones ------------------------


def test_trusted_and_adopted_models_equal_validated_ones():
    from connector.model import AddComment, Plan, SlaClock, adopt, trusted

    when = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    values = {"metric": "resolution", "target_minutes": 480, "clock": "business", "calendar": "standard",
              "elapsed_minutes": 0.0, "remaining_minutes": 480.0, "state": "running", "started": when,
              "due": when + timedelta(hours=8), "breached_at": None, "stopped_at": None, "cycle": 0,
              "warn_at": (when,)}
    for built in (adopt(SlaClock, dict(values)), trusted(SlaClock, **values)):
        validated = SlaClock(**values)
        assert built == validated and built.model_dump_json() == validated.model_dump_json()
        assert built.model_fields_set == validated.model_fields_set
        assert repr(built) == repr(validated)
    comment = AddComment(rule="sla", reason="r", body="b")
    partial = trusted(Plan, platform="jira", ticket_id="1", ticket_key="SUP-1", evaluated_at=when, actions=[comment])
    validated = Plan(platform="jira", ticket_id="1", ticket_key="SUP-1", evaluated_at=when, actions=[comment])
    assert partial == validated and partial.model_dump_json() == validated.model_dump_json()
    assert partial.model_fields_set == validated.model_fields_set
    assert partial.sla is not validated.sla  # a default factory runs per instance


def test_engine_plans_survive_a_validation_round_trip():
    """What the engine builds without validating is exactly what validation would accept and give."""
    from connector.model import Plan
    from connector.rules.engine import evaluate
    from tests.factories import agent_reply, at, ticket

    samples = [
        ticket(created="2026-11-18 09:00", fields={}),  # intake missing: comment + transition
        ticket(created="2026-11-10 09:00", status=Status.IN_PROGRESS, priority="P1",
               history=[("2026-11-10 09:30", Status.NEW, Status.IN_PROGRESS)],
               comments=[agent_reply("2026-11-10 10:00")]),  # breaches, escalation
        ticket(created="2026-11-20 09:00", status=Status.RESOLVED, priority="P0",
               history=[("2026-11-20 11:00", Status.IN_PROGRESS, Status.RESOLVED)]),
    ]
    for sample in samples:
        plan = evaluate(sample, at("2026-11-20 15:00"), CONFIG)
        again = Plan.model_validate(plan.model_dump())
        assert again == plan
        assert again.model_dump_json() == plan.model_dump_json()


def test_clock_context_reads_as_the_dict_it_replaced():
    """Templates see the same `clock` values, whole or key by key, as from the former plain dict."""
    from connector import templates
    from connector.rules.sla import METRIC_LABELS, clock_context
    from connector.timefmt import format_instant, format_minutes

    created = datetime(2026, 11, 20, 9, 0, tzinfo=ZONES[2])
    ticket = Ticket(platform="jira", id="1", key="SUP-1", priority="P1", status=Status.IN_PROGRESS, created=created)
    targets = [MetricTarget("first_response", 30, "business", STANDARD),
               MetricTarget("resolution", 6000, "business", STANDARD)]
    clocks = compute_clocks(ticket, created + timedelta(hours=3), targets, paused=PAUSE_SETS[0], warn_percents=[75])
    for clock, _ in clocks.values():
        for percent in (None, 75):
            tz = STANDARD.tz
            expected = {
                "metric": clock.metric, "metric_label": METRIC_LABELS[clock.metric],
                "target": format_minutes(clock.target_minutes), "elapsed": format_minutes(clock.elapsed_minutes),
                "remaining": format_minutes(clock.remaining_minutes),
                "due": format_instant(clock.due, tz) if clock.due else "",
                "breached_at": format_instant(clock.breached_at, tz) if clock.breached_at else "",
                "percent": percent if percent is not None else int(clock.elapsed_percent), "cycle": clock.cycle,
            }
            lazy = clock_context(clock, tz, percent)
            assert dict(lazy) == expected and list(lazy) == list(expected)
            source = "{{ clock.due }}|{{ clock['target'] }}|{{ clock.percent }}|{{ clock }}|{{ clock | length }}"
            assert templates.render(source, {"clock": clock_context(clock, tz, percent)}) == \
                templates.render(source, {"clock": expected})
