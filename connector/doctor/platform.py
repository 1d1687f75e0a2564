"""What the Jira and Zendesk doctors do the same way, written once.

Each platform's doctor (`jira.py`, `zendesk.py`) subclasses `PlatformDoctor` and keeps what
is its own: which reads it makes, how a field reference resolves on that site and what a
field's type means there. The base holds the parts whose logic is one and the same on both,
so that a change to them (a check's wording, the order of a decision) cannot drift apart:

- `run`: the credentials first (nothing else can be read without them), then the
  connector account, then the platform's own `run_checks`;
- `guard`: one step of the run; an unexpected read failure fails that step's own check and
  the other steps still run;
- `check_fields`: every logical field the rules read or write, mapped or not, then the
  category and group fields – the per-field resolve and type check is the platform's
  `check_field` hook;
- the webhook URL the receiver listens on, and whether a configured webhook points at it;
- the priority mapping's verdict (a bad write value, unmapped site priorities, or OK).

Check ids, texts and fixes are exactly what each platform printed before (tests compare
them); only the platform's name and its words for a field reference vary.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from connector.doctor.checks import Check, DoctorOptions
from connector.doctor.needs import GROUP, Needs
from connector.model import PRIORITIES
from connector.platforms.base import PlatformError
from connector.platforms.mapping import PlatformMapping
from connector.settings import Settings

T = TypeVar("T")

# Logical fields holding a due time (SLA targets, follow-up): both platforms check them for
# a date type rather than by their name.
DUE_FIELDS = frozenset({"sla_first_response_due", "sla_resolution_due", "sla_periodic_update_due", "follow_up_due"})


class PlatformDoctor(ABC):
    """The shared run machinery and checks of one platform's doctor (see the module docstring)."""

    PLATFORM: ClassVar[str]  # "jira": the check ids' prefix and the config's platforms.<name>
    TITLE: ClassVar[str]  # "Jira": how texts name the platform
    WEBHOOK_PATH: ClassVar[str]  # where the receiver takes this platform's deliveries
    FIELD_REF: ClassVar[str]  # what platforms.<name>.fields.<field> takes, as a fix shows it
    FIELDS_READ: ClassVar[str]  # the request listing the site's fields, as a failure names it
    FIELDS_FIX: ClassVar[str]  # what to do when that request fails
    RESOLUTION_ERROR: ClassVar[type[Exception]]  # what the catalogue raises for a reference it cannot resolve
    # Field types (as the platform names them) a logical field may have, by what rules do with it.
    DUE_TYPES: ClassVar[set[str]]
    FIELD_TYPES: ClassVar[dict[str, set[str]]]
    TEXT_TYPES: ClassVar[set[str]]
    CATEGORY_TYPES: ClassVar[set[str]]
    GROUP_TYPES: ClassVar[set[str]]

    def __init__(self, adapter: Any, mapping: PlatformMapping, needs: Needs, settings: Settings,
                 options: DoctorOptions) -> None:
        self.adapter = adapter
        self.mapping = mapping
        self.needs = needs
        self.settings = settings
        self.options = options
        self.checks: list[Check] = []

    def run(self) -> list[Check]:
        """Every check of the platform; only the credentials check when that fails."""
        me = self.check_credentials()
        if me is None:
            return self.checks
        self.guard(f"{self.PLATFORM}.connector_account", self.check_connector_account, me)
        self.run_checks(me)
        return self.checks

    @abstractmethod
    def check_credentials(self) -> Mapping[str, Any] | None:
        """Who the credentials log in as (the site's answer), or None with a FAIL added."""
        ...

    @abstractmethod
    def check_connector_account(self, me: Mapping[str, Any]) -> None:
        """Whether platforms.<name>.connector_account, if set, is the account logged in as."""
        ...

    @abstractmethod
    def run_checks(self, me: Mapping[str, Any]) -> None:
        """The platform's checks after the credentials and the connector account, in order."""
        ...

    def guard(self, cid: str, step: Callable[..., T], *args: Any) -> T | None:
        """Run one step; a read it did not expect to fail becomes a FAIL of its own, and the
        other steps still run (one unreadable resource must not hide the rest)."""
        try:
            return step(*args)
        except PlatformError as exc:
            # Logged under the platform module's name, where the step is.
            logging.getLogger(type(self).__module__).warning(
                "doctor.read_failed", extra={"platform": self.PLATFORM, "check": cid, "status": exc.status})
            self.add(Check.fail(cid, f"could not be checked: {self.TITLE} answered {exc}",
                                "check the account's access to this resource and run the doctor again"))
            return None

    def add(self, check: Check) -> None:
        self.checks.append(check)

    # --- webhook -----------------------------------------------------------------------------

    def expected_webhook_url(self) -> str | None:
        if not self.options.public_url:
            return None
        return self.options.public_url.rstrip("/") + self.WEBHOOK_PATH

    def points_here(self, url: str) -> bool:
        """Whether a webhook sending to `url` reaches this receiver: the exact URL when
        --public-url is known, else any URL whose path ends in the receiver's path."""
        expected = self.expected_webhook_url()
        if expected:
            return url.rstrip("/") == expected
        return urlsplit(url).path.rstrip("/").endswith(self.WEBHOOK_PATH)

    # --- fields --------------------------------------------------------------------------------

    def check_fields(self) -> Any:
        """Every field the rules use, checked on the site; the site's field catalogue (None
        when it cannot be read), for the checks that look at fields again."""
        p = self.PLATFORM
        try:
            catalogue = self.adapter.field_catalogue()
        except PlatformError as exc:
            self.add(Check.fail(f"{p}.fields", f"{self.FIELDS_READ} failed: {exc}", self.FIELDS_FIX))
            return None
        needs = self.needs
        logical = sorted({*needs.reads, *(w for w in needs.writes if not w.startswith("@"))})
        for name in logical:
            cid = f"{p}.field.{name}"
            writers = sorted(needs.writers.get(name, ()))
            readers = sorted(needs.reads.get(name, ()))
            users = ", ".join(sorted({*writers, *readers}))
            ref = self.mapping.fields.get(name)
            if ref is None:
                if readers:
                    self.add(Check.fail(cid, f"rules {users} use {name!r}, which platforms.{p}.fields does not map: "
                                             "it always reads as empty",
                                        f"map it: platforms.{p}.fields.{name}: {self.FIELD_REF}"))
                else:
                    self.add(Check.warn(cid, f"rules {users} write {name!r}, which is not mapped: the write is skipped",
                                        f"map it: platforms.{p}.fields.{name}: {self.FIELD_REF}"))
                continue
            self.check_field(cid, name, ref, f"platforms.{p}.fields.{name}", users, bool(writers), catalogue,
                             self.field_types(name))
        if needs.reads_category:
            self.check_field(f"{p}.field.category", "category", self.mapping.category_field,
                             f"platforms.{p}.category_field", "routing/intake", False, catalogue, self.CATEGORY_TYPES)
        if GROUP in needs.writes and self.group_is_field():
            self.check_field(f"{p}.field.group", "group", self.mapping.group_field, f"platforms.{p}.group_field",
                             ", ".join(sorted(needs.writers[GROUP])), True, catalogue, self.GROUP_TYPES)
        return catalogue

    def field_types(self, name: str) -> set[str]:
        """The field types logical field `name` may have; `DUE_TYPES` itself for a due time."""
        return self.DUE_TYPES if name in DUE_FIELDS else self.FIELD_TYPES.get(name, self.TEXT_TYPES)

    def group_is_field(self) -> bool:
        """Whether the group is written to a field of the site (checked with the fields)."""
        return True

    @abstractmethod
    def check_field(self, cid: str, name: str, ref: str, where: str, users: str, written: bool, catalogue: Any,
                    allowed: set[str]) -> None:
        """Resolve `ref` (the mapping at `where`) on the site and check its type is in
        `allowed` (`allowed is self.DUE_TYPES` for a due time); add one check."""
        ...

    def recognised_fields(self, catalogue: Any) -> Iterator[tuple[str, str, frozenset[str], Any]]:
        """(logical field, rule, values the rule recognises in it, the site's field) for every
        answer a rule looks for in a dropdown (closure's "not resolved"); a field that is not
        mapped or does not resolve is left out (check_fields reports it)."""
        for name, (rule, values) in sorted(self.needs.recognised.items()):
            ref = self.mapping.fields.get(name)
            try:
                resolved = catalogue.resolve(ref) if ref else None
            except self.RESOLUTION_ERROR:
                continue
            if resolved is not None:
                yield name, rule, values, resolved

    # --- priorities ----------------------------------------------------------------------------

    def report_priorities(self, problem: str | None, fix: str, unmapped: list[str]) -> None:
        """The priorities check: FAIL with `problem` (a P0-P3 write value the site lacks),
        else WARN for site priorities no logical one maps to, else OK."""
        cid = f"{self.PLATFORM}.priorities"
        where = f"platforms.{self.PLATFORM}.priorities"
        if problem:
            self.add(Check.fail(cid, problem, fix))
        elif unmapped:
            self.add(Check.warn(cid, f"priorities {', '.join(unmapped)} are not in {where}: "
                                     "tickets with them read as having no priority",
                                f"map them to P0-P3 under {where}"))
        else:
            self.add(Check.ok(cid, "P0-P3 map to " + ", ".join(f"{p} {self.mapping.write_priorities[p]!r}"
                                                              for p in PRIORITIES)))
