"""The Zendesk adapter (see `adapter` for how it counts requests)."""

from connector.platforms.zendesk.adapter import (
    FieldResolutionError,
    IncrementalPage,
    TicketFieldCatalogue,
    ZendeskAdapter,
    already_equal,
    format_custom_field_value,
    zendesk_datetime,
)

__all__ = ["FieldResolutionError", "IncrementalPage", "TicketFieldCatalogue", "ZendeskAdapter", "already_equal",
           "format_custom_field_value", "zendesk_datetime"]
