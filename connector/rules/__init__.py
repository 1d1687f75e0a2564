"""The rule types, registered by their `type` key, and the union the config validates against.

Importing a rule module registers it; the discriminated union on `type` makes pydantic
report an unknown type together with the list of valid ones.
"""

from typing import Annotated, Union

from pydantic import Field

from connector.rules import (  # noqa: F401  (registers)
    auto_close, closing_summary, closure, escalation, follow_up, problem_number, required_fields, review_gate, routing, similar_cases, sla,
)
from connector.rules.base import RULE_TYPES

Rule = Annotated[Union[tuple(RULE_TYPES.values())], Field(discriminator="type")]

__all__ = ["RULE_TYPES", "Rule"]
