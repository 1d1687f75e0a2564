"""Which `sla` rule (contract tier) measures a ticket – one answer for every reader.

Service desks sell different SLAs to different customers, so a rule file may hold several
`sla` rules, one per contract tier, each with its own targets and calendar:

    - id: sla-premium
      type: sla
      tier: premium
      when: {organizations: [Acme Europe]}
      calendar: europe
      targets: {P1: {first_response: 1h, resolution: 1bd}}
    - id: sla                      # the default: no `when`, last
      type: sla
      calendar: standard
      targets: {...}

How they combine: the FIRST enabled `sla` rule in file order whose `when` matches the
ticket applies, and only that one (its clocks, notices, due fields, escalation, the
report's tier); the others do nothing for that ticket. An `sla` rule without `when` matches
every ticket, so it belongs last, as the default; one placed before another `sla` rule
makes that one unreachable, which `check-config` reports. A ticket that matches none has no
SLA. A tier's name is its `tier:` key, else the rule id.

The engine, escalation, simulate, the sync's deadlines (the plan's `next_deadline`) and the
review report all ask `applicable_sla`, so they cannot disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.model import Ticket

if TYPE_CHECKING:
    from connector.config import SupportConfig
    from connector.rules.sla import SlaRule


def sla_rules(config: "SupportConfig") -> tuple["SlaRule", ...]:
    """The enabled sla rules in file order. Worked out on every call (a rule file holds a
    dozen rules): a cache would go stale when a rule is switched on or off in place. Picked
    by their registered type, so this module needs no import of the sla rule's (which
    imports this one)."""
    return tuple(r for r in config.rules if r.type == "sla" and r.enabled)


def applicable_sla(config: "SupportConfig", ticket: Ticket) -> "SlaRule | None":
    """The first enabled sla rule whose `when` matches `ticket`; None when none does."""
    for rule in sla_rules(config):
        if rule.applies(ticket):
            return rule
    return None


def default_sla(config: "SupportConfig") -> "SlaRule | None":
    """The default tier: the first enabled sla rule without `when`, else the first enabled one.
    Its calendar is the one figures not tied to a ticket (a report's period) are counted in."""
    rules = sla_rules(config)
    return next((r for r in rules if r.when.unconditional), rules[0] if rules else None)


def unreachable_reason(config: "SupportConfig", rule: "SlaRule") -> str | None:
    """Why `rule` can never apply (an earlier enabled sla rule matches whatever it matches), or None."""
    for earlier in sla_rules(config):
        if earlier is rule:
            return None
        if earlier.when.unconditional or earlier.when == rule.when:
            what = "applies to every ticket (no `when`)" if earlier.when.unconditional else "has the same `when`"
            return (f"unreachable: the sla rule '{earlier.id}' before it {what}, and the first matching sla rule "
                    f"applies; move '{rule.id}' before '{earlier.id}' (the unconditional default goes last)")
    return None
