"""Comment texts as sandboxed Jinja2 templates, bounded in time and size.

Admins write the words the connector posts, in their own language, in the rule files that
live in git. A sandboxed environment keeps a template from reaching Python internals, and
strict undefined variables turn a misspelt placeholder into a config error at load time
instead of a broken comment on a customer's ticket.

The sandbox alone does not bound what a template costs: `range()` may give 100,000 items
per loop and loops nest, `"x" * 10**9`, `2 ** 10**8` or a `replace`/`join` of big strings
allocate gigabytes in one step, and a template raising OverflowError or MemoryError is no
`TemplateError`. A rule file is reviewed, but a hot reload of a hostile or mistaken one must
neither hang `check-config` or the worker nor exhaust memory. So every render here:

- counts loop iterations and calls (macros, methods, filters) against `MAX_STEPS` and stops
  at a deadline (`RENDER_SECONDS`), so nested loops end fast whatever they iterate;
- keeps every value it builds (strings, lists – counted through nested lists and dicts)
  within `MAX_VALUE` characters: the operations that can multiply a size (`*`, `**`, `%`,
  `replace`, `join`, `indent`, widths and counts given as arguments) are checked before
  they run, every other result right after it is built;
- stops output beyond `MAX_OUTPUT` characters, everything printed (also into `{% set %}`
  blocks and macros) beyond `MAX_WRITTEN`; `range()` gives at most `MAX_RANGE` items;
- offers only string methods that cannot blow up (no `format`, `expandtabs`, `translate`)
  and no `namespace()` (which could accumulate across iterations) or `lipsum()`;
- turns every exception into a `TemplateError` with the template line it happened on.

The limits are far above what a comment needs: Jira's text fields hold at most 32,767
characters (the Jira REST API v2 spec, `CustomFieldContextDefaultValueTextArea`: "The maximum
length is 32767 characters"; Data Center admins may lower it with the advanced setting
`jira.text.field.character.limit`), so `MAX_OUTPUT` stays below that.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 10_000
MAX_OUTPUT = 32_000
MAX_VALUE = 32_000
MAX_STEPS = 1_000
MAX_WRITTEN = 4 * MAX_OUTPUT
MAX_RANGE = 1_000
MAX_INT_BITS = 1_024  # about 300 decimal digits
RENDER_SECONDS = 1.0

_LOOP_GUARD = "_connector_loop_guard"
# Methods a template may call on a string: none can make it much longer than its inputs,
# and those taking a width or a count are checked (`_check_arguments`).
_STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust",
    "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
    "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
    "swapcase", "title", "upper", "zfill",
})


# Filters that allocate as much as a number argument says.
_FILTERS_TAKING_COUNTS = frozenset({"center", "indent", "batch", "slice"})
_BUILTIN_VALUES = (str, bytes, int, float, list, tuple, dict, set, frozenset)


class TemplateLimit(SecurityError):
    """A template went beyond a limit of time or size (see the module docstring)."""


class TemplateRenderError(TemplateError):
    """A template raised an error that is not Jinja's own (OverflowError, TypeError …)."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    written: int = 0  # characters of every `{{ … }}`, also inside `{% set %}` blocks and macros


_current = threading.local()


def _tick() -> None:
    budget: _Budget | None = getattr(_current, "budget", None)
    if budget is None:
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise TemplateLimit(f"the template runs more than {MAX_STEPS} loop iterations and calls; "
                            "a comment needs far fewer (a nested loop?)")
    if time.monotonic() > budget.deadline:
        raise TemplateLimit(f"the template takes longer than {RENDER_SECONDS:g} s to render")


def _size(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters a value stands for, counted through lists and dicts; stops past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3  # about its number of digits
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return 1
    total = 0
    for item in items:
        total += 1 + (_size(item[0], limit) + _size(item[1], limit) if isinstance(value, Mapping) else _size(item, limit))
        if total > limit:
            break
    return total


def _bounded(value: Any, what: str = "a value") -> Any:
    if _size(value) > MAX_VALUE:
        raise TemplateLimit(f"{what} would be longer than {MAX_VALUE} characters")
    return value


def _check_arguments(args: tuple, kwargs: Mapping[str, Any], *, counts: bool = True) -> None:
    """Every argument within `MAX_VALUE`; with `counts`, also every integer, for the calls that
    allocate as much as a number says (`"x".center(10**9)`, `(1).to_bytes(10**9)`, `|indent`)."""
    for value in (*args, *kwargs.values()):
        if counts and isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
            raise TemplateLimit(f"the number {value if value.bit_length() < 64 else '(huge)'} is too large "
                                f"an argument (at most {MAX_VALUE})")
        _bounded(value, "an argument")


def _check_join(separator: Any, items: Any) -> None:
    if isinstance(items, Sized) and not isinstance(items, str):
        estimate = _size(items) + _size(separator) * len(items)
        if estimate > MAX_VALUE:
            raise TemplateLimit(f"the joined text would be longer than {MAX_VALUE} characters")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > MAX_VALUE:
            raise TemplateLimit(f"the replaced text would be longer than {MAX_VALUE} characters")


def _check_format(template: Any) -> None:
    """`%` formatting: a width or precision of five digits or from an argument (`*`) is refused."""
    if isinstance(template, str) and re.search(r"%[-#0 +]*(?:\*|\d{5,})|%[-#0 +]*\d*\.(?:\*|\d{5,})", template):
        raise TemplateLimit("a format width or precision this large is not allowed")


def _check_binop(op: str, left: Any, right: Any) -> None:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
    if op == "**" and ints:
        if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"the power would have more than {MAX_INT_BITS} bits")
    elif op == "*" and ints:
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"the product would have more than {MAX_INT_BITS} bits")
    elif op == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(count, int) and not isinstance(sequence, (int, float)) and count > 0:
                if _size(sequence) * count > MAX_VALUE:
                    raise TemplateLimit(f"the repeated value would be longer than {MAX_VALUE} characters")
    elif op == "%":
        _check_format(left)


def _loop_guard(iterable: Any) -> Any:
    """Wraps the iterable of every `{% for %}` (see `_BoundedEnvironment._parse`)."""
    for item in iterable:
        _tick()
        yield item


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() gives at most {MAX_RANGE} numbers in a comment template")
    return numbers


def _bounded_filter(name: str, function: Any) -> Any:
    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        plain = [a for a in args if not isinstance(a, (Context, EvalContext, ImmutableSandboxedEnvironment))]
        _check_arguments(tuple(plain[1:]), kwargs, counts=name in _FILTERS_TAKING_COUNTS)
        if plain:
            _bounded(plain[0], f"the input of |{name}")
        if name == "join" and plain:
            _check_join(kwargs.get("d", plain[1] if len(plain) > 1 else ""), plain[0])
        elif name == "replace" and len(plain) >= 3:
            _check_replace(plain[0], plain[1], plain[2])
        elif name == "indent" and plain:
            width = kwargs.get("width", plain[1] if len(plain) > 1 else 4)
            lines = str(plain[0]).count("\n") + 1
            if _size(width) * lines + _size(plain[0]) > MAX_VALUE:
                raise TemplateLimit(f"the indented text would be longer than {MAX_VALUE} characters")
        elif name == "format" and plain:
            _check_format(plain[0])
        return _bounded(function(*args, **kwargs), f"the result of |{name}")

    return bounded


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%", "//", "/"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize_output, **options)
        self.globals["range"] = _bounded_range
        self.globals[_LOOP_GUARD] = _loop_guard
        for unbounded in ("namespace", "lipsum"):
            self.globals.pop(unbounded, None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def _finalize_output(value: Any) -> Any:
        """Every `{{ … }}`: what it prints is counted, also where no output cap can see it
        (a `{% set %}` block or a macro collects its output before anyone measures it)."""
        size = _size(_bounded(value, "an output"))
        budget: _Budget | None = getattr(_current, "budget", None)
        if budget is not None:
            budget.written += size
            if budget.written > MAX_WRITTEN:
                raise TemplateLimit(f"the template prints more than {MAX_WRITTEN} characters in all")
        return value

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every loop iterates through `_loop_guard`, which counts and watches the clock."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            guard = nodes.Name(_LOOP_GUARD, "load", lineno=loop.lineno)
            loop.iter = nodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def wrap_str_format(self, value: Any) -> None:
        """`str.format` is refused (not in `_STR_METHODS`): its widths (`{:>999999999}`) allocate
        before any check could run; `%` and `|format` are checked instead."""
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr not in _STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _check_binop(operator_, left, right)
        return _bounded(self.binop_table[operator_](left, right), f"the result of {operator_}")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if __obj is not _loop_guard:
            _tick()
            owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
            if __obj is not _bounded_range:  # which says what its own limit is
                # A macro may well get a ticket number; a method of a built-in type may
                # allocate as much as its number says.
                _check_arguments(args, kwargs, counts=isinstance(owner, _BUILTIN_VALUES))
            if isinstance(owner, str) and name == "join" and args:
                _check_join(owner, args[0])
            elif isinstance(owner, str) and name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        return result if __obj is _loop_guard else _bounded(result, "a result")


def _bounded_concat(parts: Any) -> str:
    """Joins the output of a `{% set %}` block or a macro (generated code calls `environment.concat`)."""
    parts = list(parts)
    if sum(len(part) for part in parts) > MAX_VALUE:
        raise TemplateLimit(f"a block or macro would produce more than {MAX_VALUE} characters")
    return "".join(parts)


_ENV = _BoundedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
_ENV.concat = _bounded_concat  # type: ignore[method-assign]


@lru_cache(maxsize=512)
def _compiled(source: str):
    template = _ENV.from_string(source)
    # Jinja merges a template's globals (a ChainMap over the environment's) into every
    # render's context by iterating the ChainMap in Python; a plain dict copies at C speed.
    # Nothing adds globals after start-up, so the snapshot is the same mapping.
    template.globals = dict(template.globals)
    return template


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception happened on (jinja rewrites tracebacks to template lines)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(source: str, context: dict[str, Any], *, seconds: float = RENDER_SECONDS) -> str:
    """Render a comment template within the limits; raises jinja2.TemplateError for any failure
    (a bad template, a limit reached, or an exception such as OverflowError inside it)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateLimit(f"the template has {len(source)} characters; at most {MAX_TEMPLATE_CHARS}")
    previous = getattr(_current, "budget", None)
    _current.budget = _Budget(deadline=time.monotonic() + seconds)
    try:
        parts: list[str] = []
        length = 0
        for part in _compiled(source).generate(**context):
            length += len(part)
            if length > MAX_OUTPUT:
                raise TemplateLimit(f"the comment would be longer than {MAX_OUTPUT} characters")
            parts.append(part)
        return "".join(parts).strip()
    except TemplateError:
        raise
    except Exception as exc:  # OverflowError, MemoryError, RecursionError, TypeError, ZeroDivisionError …
        line = _template_line(exc)
        error = TemplateRenderError(f"{type(exc).__name__}: {str(exc)[:200]}")
        error.lineno = line  # type: ignore[attr-defined]
        raise error from None
    finally:
        _current.budget = previous


def check(source: str, sample_context: dict[str, Any]) -> str | None:
    """Return a readable problem with the template, or None when it renders on a sample ticket.

    Never raises: whatever the template does (including MemoryError and RecursionError) is a
    problem in the config, reported with the template line where it is known.
    """
    try:
        render(source, sample_context)
    except TemplateError as exc:
        line = _template_line(exc)
        where = f" (template line {line})" if line else ""
        return f"template does not render{where}: {exc.message or exc}"
    except BaseException as exc:  # noqa: BLE001 – a config check must name the problem, not crash
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return f"template does not render: {type(exc).__name__}"
    return None


def ticket_context(ticket) -> dict[str, Any]:
    """The `ticket` variable every template can use."""
    return {
        "key": ticket.key,
        "id": ticket.id,
        "url": ticket.url or "",
        "summary": ticket.summary,
        "category": ticket.category or "",
        "priority": ticket.priority or "",
        "status": ticket.status.value,
        "reporter": ticket.reporter or "",
        "assignee": ticket.assignee or "",
        "group": ticket.group or "",
        "platform": ticket.platform,
    }


SAMPLE_TICKET = {
    "key": "SUP-1", "id": "10001", "url": "https://example.atlassian.net/browse/SUP-1",
    "summary": "VPN drops every hour", "category": "network", "priority": "P1",
    "status": "new", "reporter": "reporter", "assignee": "agent", "group": "L1", "platform": "jira",
}
SAMPLE_CLOCK = {
    "metric": "first_response", "metric_label": "first response", "target": "2h",
    "elapsed": "1h 30m", "remaining": "30m", "due": "2026-11-20 11:00 CST", "percent": 75,
    "breached_at": "2026-11-20 11:00 CST", "cycle": 0,
}
