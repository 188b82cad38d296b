"""The one error class of ``notify/``: every problem here is the operator's to fix (a bad file, a
mail server that cannot be reached), so it is one line, and the CLI turns it into exit 2."""

from __future__ import annotations

from iotscope.errors import IotscopeError


class NotifyError(IotscopeError, ValueError):
    """Unusable orgs file, assignments file, findings file or delivery settings; one line."""


class DeliveryError(NotifyError):
    """Mail that could not be delivered (server unreachable after the retries, refused, auth failed)."""
