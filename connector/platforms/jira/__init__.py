"""The Jira adapter as a package: one module per job (see `adapter` for the map)."""

from connector.platforms.field_values import already_equal
from connector.platforms.jira.adapter import JiraAdapter
from connector.platforms.jira.fields import FieldCatalogue, FieldResolutionError, JiraField, format_field_value

__all__ = ["FieldCatalogue", "FieldResolutionError", "JiraAdapter", "JiraField", "already_equal", "format_field_value"]
