"""The Jira adapter (see `adapter` for how it counts requests)."""

from connector.platforms.jira.adapter import (
    FieldCatalogue,
    FieldResolutionError,
    JiraAdapter,
    JiraField,
    already_equal,
    format_field_value,
)

__all__ = ["FieldCatalogue", "FieldResolutionError", "JiraAdapter", "JiraField", "already_equal", "format_field_value"]
