"""Loading and validating the admins' YAML rule files.

A bad config must never start silently: every problem is reported with the file, the line,
the key path and what is allowed, all at once, so an admin can fix a file in one pass and
`connector check-config` can gate a merge request. Several files (a directory) are merged:
rules are concatenated in file-name order, named sections (calendars, fields) must not
define the same name twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.calendar import CalendarConfig
from connector.channels.config import ChannelConfig
from connector.platforms.mapping import PlatformMappings, default_jira_mapping, default_zendesk_mapping
from connector.rules import Rule, RULE_TYPES

DEFAULT_FIELD_LABELS = {
    "category": "Category",
    "priority": "Priority",
    "environment": "Environment (OS / browser / product version)",
    "impact_scope": "Impact scope (who and what is affected)",
    "symptom": "Symptom",
    "repro_steps": "Steps to reproduce",
    "error_message": "Exact error message",
    "occurred_at": "When it happened",
    "root_cause": "Root cause",
    "solution": "Solution",
    "verification_result": "Reporter's verification result",
    "kb_link": "Knowledge-base link",
    "recurrence_note": "Recurrence note (why a known issue came back)",
    "satisfaction": "Satisfaction",
    "change_type": "Change type",
    "reviewer": "Reviewer",
    "preventive_measures": "Preventive measures",
}


class Markers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field(
        default="spc-",
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="prefix of the labels/tags that record one-time actions; lower case, no spaces",
    )


class Rollout(BaseModel):
    """How a rule moving from `mode: observe` (or CONNECTOR_MODE=observe) to enforce treats its backlog."""

    model_config = ConfigDict(extra="forbid")
    backlog_hours: float = Field(
        default=24, ge=0,
        description="a one-time comment first recorded as observed more than this many hours before it is "
                    "enforced is not posted: only its marker is written (recorded as done without posting)",
    )


class SupportConfig(BaseModel):
    """The whole configuration: calendars, platform mappings, field labels and rules."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    markers: Markers = Field(default_factory=Markers)
    fields: dict[str, str] = Field(
        default_factory=dict, description="logical field name -> label used in comments"
    )
    calendars: dict[str, CalendarConfig] = Field(default_factory=dict)
    platforms: PlatformMappings = Field(default_factory=PlatformMappings)
    rollout: Rollout = Field(default_factory=Rollout)
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict, description="team-chat targets by name, referenced from notices (connector.channels)")
    rules: list[Rule] = Field(default_factory=list)

    def cross_check(self) -> list[tuple[tuple, str]]:
        """Problems between sections (ids, calendar names, templates) as (key path, message)."""
        problems: list[tuple[tuple, str]] = []
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                problems.append((("rules", index, "id"), f"rule id '{rule.id}' is used twice; every rule needs its own id"))
            seen.add(rule.id)
            try:
                problems.extend((("rules", index) + where, message) for where, message in rule.check(self))
            except Exception as exc:  # a check must name the rule, not end in a traceback
                problems.append((("rules", index), f"cannot be checked ({type(exc).__name__}: {str(exc)[:200]})"))
        return problems

    @cached_property
    def compiled_calendars(self) -> dict[str, Any]:
        return {name: cal.build(name) for name, cal in self.calendars.items()}

    def calendar(self, name: str):
        return self.compiled_calendars[name]

    def field_label(self, name: str) -> str:
        return self.fields.get(name) or DEFAULT_FIELD_LABELS.get(name) or name.replace("_", " ")

    def marker(self, name: str) -> str:
        return f"{self.markers.prefix}{name}"


@dataclass
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- YAML with positions -------------------------------------------------------------------

Position = tuple[str, int]  # (file, line)


def _positions(node: yaml.Node, file: str, path: tuple = (), out: dict | None = None) -> dict:
    """Map every key path in a composed YAML document to (file, 1-based line)."""
    out = {} if out is None else out
    out.setdefault(path, (file, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _positions(value_node, file, path + (key,), out)
            # The key's own line, not its value's, is where an admin looks.
            out[path + (key,)] = (file, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, file, path + (index,), out)
    return out


# A rule file is a few kilobytes; the cap keeps a wrong path (a log, a dump) from being read whole.
MAX_FILE_BYTES = 1024 * 1024
MAX_NESTING = 50


class _Refused(yaml.MarkedYAMLError):
    """A construct rule files may not use, with where it is."""


class RuleFileLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without anchors and aliases, and with bounded numbers.

    SafeLoader expands every alias into a full copy of what it names: nine nested lists of
    nine aliases (a 443-byte "billion laughs" file) become 9^9 nodes and gigabytes of memory.
    Rule files have no use for `&anchor` / `*alias` / `<<: *merge`, so they are refused where
    they appear, before anything is expanded; what is left has at most as many nodes as the
    file has characters. Python 3.11 refuses integers of more than 4300 digits with a
    ValueError (CVE-2020-10735); such a number is reported at its line like any other error.
    """

    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(None, None, f"YAML {kind}{event.anchor} is not allowed in rule files (a few bytes of "
                           "aliases can expand to gigabytes); write the values out", event.start_mark)
        # The composer recurses once per level: refused early, at its line, instead of
        # unwinding a RecursionError a thousand levels deep.
        if self._depth >= MAX_NESTING:
            raise _Refused(None, None, f"nests more than {MAX_NESTING} levels deep; a rule file needs fewer than 10",
                           event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _Refused(None, None, "this number is too long to be a setting", node.start_mark) from None

    def construct_yaml_float(self, node):
        try:
            return super().construct_yaml_float(node)
        except (ValueError, OverflowError):
            raise _Refused(None, None, "this number cannot be read", node.start_mark) from None


RuleFileLoader.add_constructor("tag:yaml.org,2002:int", RuleFileLoader.construct_yaml_int)
RuleFileLoader.add_constructor("tag:yaml.org,2002:float", RuleFileLoader.construct_yaml_float)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The composed document (for positions) and its data, parsed once."""
    loader = RuleFileLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> tuple[dict, dict]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([ConfigProblem(str(path), None, "", f"is {size} bytes; a rule file may have at most "
                                             f"{MAX_FILE_BYTES // 1024} KiB (is this the right file?)")])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")])
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot be read: {exc.strerror}")])
    try:
        node, data = _parse(text)
        positions = _positions(node, str(path)) if isinstance(data, dict) else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        if isinstance(exc, _Refused):
            raise ConfigError([ConfigProblem(str(path), line, "", str(exc.problem))]) from None
        raise ConfigError([ConfigProblem(str(path), line, "", f"not valid YAML: {getattr(exc, 'problem', None) or exc}")])
    except RecursionError:
        raise ConfigError([ConfigProblem(str(path), None, "", "nests too deeply to be a rule file")]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(str(path), 1, "", "the file must be a mapping with keys such as rules:, calendars:, platforms:")])
    return data, positions


def _merge(files: list[Path]) -> tuple[dict, dict]:
    merged: dict[str, Any] = {}
    positions: dict[tuple, Position] = {}
    problems: list[ConfigProblem] = []
    for path in files:
        data, pos = _read_yaml(path)
        offset = len(merged.get("rules", []))
        for key, value in data.items():
            if key == "rules" and isinstance(value, list):
                merged.setdefault("rules", []).extend(value)
            elif key in ("calendars", "fields", "channels") and isinstance(value, dict):
                section = merged.setdefault(key, {})
                for name in value:
                    if name in section:
                        problems.append(ConfigProblem(str(path), pos.get((key, name), (None, None))[1], f"{key}.{name}", f"'{name}' is already defined in another file"))
                section.update(value)
            elif key in merged and key not in ("version",):
                problems.append(ConfigProblem(str(path), pos.get((key,), (None, None))[1], key, "this section is already defined in another file; keep it in one file"))
            else:
                merged[key] = value
        for p, where in pos.items():
            if p and p[0] == "rules" and len(p) > 1 and isinstance(p[1], int):
                positions[("rules", p[1] + offset) + p[2:]] = where
            else:
                positions.setdefault(p, where)
    if problems:
        raise ConfigError(problems)
    return merged, positions


def _with_platform_defaults(data: dict) -> dict:
    """Admins override only what differs from the stock platform; the rest keeps its default."""
    platforms = data.get("platforms")
    if not isinstance(platforms, dict):
        return data
    data = dict(data)
    defaults = {"jira": default_jira_mapping(), "zendesk": default_zendesk_mapping()}
    merged = {}
    for name, override in platforms.items():
        if name in defaults and isinstance(override, dict):
            base = defaults[name].model_dump(mode="json")
            for key, value in override.items():
                if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in ("statuses", "priorities"):
                    base[key] = {**base[key], **value}
                else:
                    base[key] = value
            merged[name] = base
        else:
            merged[name] = override
    data["platforms"] = merged
    return data


def _locate(loc: tuple, data: Any, positions: dict, fallback_file: str) -> tuple[str, int | None, str]:
    """Turn a pydantic error location into (file, line, readable key path) of the YAML."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and part in RULE_TYPES:
            continue  # the discriminator tag pydantic adds for a union member
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's internal step names
        else:
            path.append(part)
            node = None
    file, line = fallback_file, None
    for end in range(len(path), -1, -1):
        where = positions.get(tuple(path[:end]))
        if where:
            file, line = where
            break
    readable = ""
    for part in path:
        readable += f"[{part}]" if isinstance(part, int) else (f".{part}" if readable else str(part))
    if path and path[0] == "rules" and len(path) > 1 and isinstance(data, dict):
        try:
            rule_id = data["rules"][path[1]].get("id")
        except (IndexError, AttributeError, KeyError, TypeError):
            rule_id = None
        if rule_id:
            readable += f" (rule '{rule_id}')"
    return file, line, readable


def _message(error: dict) -> str:
    kind = error.get("type")
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return f"unknown rule type '{ctx.get('tag')}'; valid types: {', '.join(sorted(RULE_TYPES))}"
    if kind == "union_tag_not_found":
        return f"every rule needs a 'type'; valid types: {', '.join(sorted(RULE_TYPES))}"
    if kind == "extra_forbidden":
        return "unknown key; check the spelling (`connector schema` lists the allowed keys)"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"got {error.get('input')!r}; allowed: {ctx.get('expected')}"
    if kind == "enum":
        return f"got {error.get('input')!r}; allowed: {ctx.get('expected')}"
    msg = error.get("msg", "invalid value")
    return msg.removeprefix("Value error, ")


def config_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ConfigError([ConfigProblem(str(path), None, "", "no .yaml files in this directory; point CONNECTOR_CONFIG at a rule file or a directory of them")])
        return files
    if not path.exists():
        raise ConfigError([ConfigProblem(str(path), None, "", "file not found; set CONNECTOR_CONFIG or pass the path of a rule file (e.g. config/standard-support.yaml)")])
    return [path]


def load_config(path: Path | str) -> SupportConfig:
    """Load and validate one rule file or a directory of them; raise ConfigError listing every problem."""
    files = config_files(Path(path))
    data, positions = _merge(files)
    try:
        config = SupportConfig.model_validate(_with_platform_defaults(data))
    except (TypeError, OverflowError, RecursionError, MemoryError) as exc:
        # pydantic reports ValueErrors as validation errors; anything else a validator meets
        # (a calendar with an absurd date, a structure nested too deeply) is still the file's fault.
        raise ConfigError([ConfigProblem(str(files[0]), None, "", f"cannot be checked ({type(exc).__name__}: "
                                         f"{str(exc)[:200]})")]) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if error.get("type", "").startswith("union_tag"):
                loc += ("type",)  # point at the rule's `type:` line
            file, line, key_path = _locate(loc, data, positions, str(files[0]))
            problems.append(ConfigProblem(file, line, key_path, _message(error)))
        raise ConfigError(problems) from None
    problems = [ConfigProblem(*_locate(loc, data, positions, str(files[0])), message)
                for loc, message in config.cross_check()]
    if problems:
        raise ConfigError(problems)
    # Durations parsed, calendars built, targets resolved now, not on the first ticket.
    for rule in config.rules:
        rule.prepare(config)
    return config


def json_schema() -> dict:
    """The JSON Schema of a rule file, for editors' autocompletion (yaml-language-server)."""
    schema = SupportConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Support-process connector rules"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False)
