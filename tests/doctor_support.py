"""What the `connector doctor` tests of both platforms do the same way.

Running the real command (click's CliRunner, everything from the environment as `serve`
reads it), reading its JSON report, checking that the sandbox saw no write, and the
sandbox factory behind each test module's `site` fixture. The platform tests keep their
own sites, credentials and cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from connector.cli import main
from connector.settings import DEFAULT_CONFIG

S = TypeVar("S")


def standard_rules() -> str:
    """The standard rules with a calendar whose holiday data does not run out next year (the
    calendar check has tests of its own), so the doctor tests do not depend on today's date."""
    return DEFAULT_CONFIG.read_text(encoding="utf-8").replace("holidays: {country: CN}", "holidays: {country: DE}")


def connector_env(config: Path, tmp_path: Path, public_url: str | None) -> dict[str, str | None]:
    """The environment of a doctor run apart from the platforms' credentials."""
    return {"CONNECTOR_CONFIG": str(config), "CONNECTOR_DATA_DIR": str(tmp_path / "data"),
            "CONNECTOR_QUEUE_URL": None, "CONNECTOR_PUBLIC_URL": public_url}


def run_doctor(env: Mapping[str, str | None], *args: str) -> tuple[int, dict]:
    """`connector doctor --format json ARGS` in `env`: its exit code and its report."""
    result = CliRunner().invoke(main, ["doctor", "--format", "json", *args], env=dict(env))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def by_id(report: dict) -> dict[str, dict]:
    return {check["id"]: check for check in report["checks"]}


def failed(report: dict) -> dict[str, dict]:
    return {check["id"]: check for check in report["checks"] if check["status"] == "FAIL"}


def writes(sandbox: Any) -> list:
    """Every request the sandbox saw that was not a GET: the doctor must send none."""
    return [call for call in sandbox.calls if call.method != "GET"]


def sandbox_site(cls: Callable[..., S], defaults: Mapping[str, Any],
                 prepare: Callable[[S, Callable[[S], None] | None], None],
                 closed: Callable[[S], None] | None = None) -> Iterator[Callable[..., S]]:
    """Body of a `site` fixture (`yield from sandbox_site(...)`): yields a factory
    `make(configure=None, **options)` that starts a `cls(**defaults, **options)` sandbox, lets
    `prepare(sandbox, configure)` set it up, and forgets the calls made so far; every sandbox
    made is stopped at the end, then `closed(sandbox)` may check it."""
    opened: list[Any] = []

    def make(configure: Callable[[S], None] | None = None, **options: Any) -> S:
        sandbox = cls(**{**defaults, **options}).__enter__()  # type: ignore[attr-defined]
        opened.append(sandbox)
        prepare(sandbox, configure)
        sandbox.reset_calls()  # type: ignore[attr-defined]
        return sandbox

    yield make
    for sandbox in opened:
        sandbox.__exit__(None, None, None)
        if closed is not None:
            closed(sandbox)


def assert_passes(code: int, report: dict, ok: tuple[str, ...]) -> dict[str, dict]:
    """A site set up right: exit 0, no FAIL, and every check of `ok` is OK; the checks by id."""
    assert code == 0, failed(report)
    assert report["ok"] is True and report["counts"]["FAIL"] == 0
    checks = by_id(report)
    for cid in ok:
        assert checks[cid]["status"] == "OK", checks[cid]
    return checks


def assert_caught(code: int, report: dict, cid: str, status: str, found: list[str], fix: list[str]) -> None:
    """Check `cid` has `status`, its finding names every one of `found` and its fix every one
    of `fix`; and only that check fails (with the exit code to match)."""
    checks = by_id(report)
    assert cid in checks, sorted(checks)
    check = checks[cid]
    assert check["status"] == status, check
    for words in found:
        assert words in check["found"], (words, check)
    for words in fix:
        assert words in check["fix"], (words, check)
    # Only the broken thing fails: the other checks still pass.
    assert set(failed(report)) == ({cid} if status == "FAIL" else set()), failed(report)
    assert code == (1 if status == "FAIL" else 0)


def assert_one_fail_line(result: Result, cid: str, words: str, secrets: tuple[str, ...]) -> None:
    """The text report: one `STATUS id …` line per check, a summary counting one FAIL, the
    FAIL line naming `cid`, `words` and a fix, and none of `secrets` anywhere."""
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert all(re.match(r"^(OK|WARN|FAIL) +[a-z]", line) for line in lines[:-1]), lines
    assert re.match(r"^doctor FAILED: \d+ OK, \d+ WARN, 1 FAIL$", lines[-1])
    [line] = [line for line in lines if line.startswith("FAIL")]
    assert cid in line and words in line and "-> fix: " in line
    for secret in secrets:
        assert secret not in result.output
