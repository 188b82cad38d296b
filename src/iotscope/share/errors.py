"""The one error class of the share stage: bad feeds, policies, keys, unreachable TAXII servers."""

from __future__ import annotations

from iotscope.errors import IotscopeError


class ShareError(IotscopeError, ValueError):
    """Something to share from or to is unusable; the message is one line naming it and why."""
