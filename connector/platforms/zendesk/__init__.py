"""The Zendesk adapter as a package: one module per job (see `adapter` for the map)."""

from connector.platforms.field_values import already_equal
from connector.platforms.zendesk.adapter import ZendeskAdapter
from connector.platforms.zendesk.fields import (
    FieldResolutionError,
    TicketFieldCatalogue,
    format_custom_field_value,
    zendesk_datetime,
)
from connector.platforms.zendesk.search import IncrementalPage

__all__ = ["FieldResolutionError", "IncrementalPage", "TicketFieldCatalogue", "ZendeskAdapter", "already_equal",
           "format_custom_field_value", "zendesk_datetime"]
