"""The one exception root of iotscope.

Every error that is the user's to fix (bad input, an unusable store, a refused target) derives
from :class:`IotscopeError`, and its message is one line meant for them. The thin edges (``cli/``,
later ``web/``) catch this one class and turn it into a one-line message and exit 2 (or a 4xx),
instead of each command listing a tuple of unrelated classes; anything else is a bug and may
show a traceback.
"""

from __future__ import annotations


class IotscopeError(Exception):
    """A problem the user can fix; ``str(exc)`` is one line naming the input and what is wrong."""
