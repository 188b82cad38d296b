"""Child processes that end with their parent, however the parent ends (``kill -9`` included).

Why: a sweep worker that outlived a killed survey would go on connecting, reparented to init,
where no Ctrl-C, no blocklist change and no ``--resume`` reaches it (and a resume would double
the rate); a dumpcap outliving its sensor keeps capturing into a spool nobody ingests; a device
fleet left behind keeps its loopback ports taken. A parent killed with SIGKILL runs no clean-up
of its own, so the child must notice:

* on Linux the kernel sends it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
* everywhere, the caller also watches a pipe from the parent, whose end-of-file says the same.

``PR_SET_PDEATHSIG`` only covers a parent that dies *after* the call, so the child then checks that
its parent is still the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def end_with_parent(parent_pid: int, signal_: int = signal.SIGKILL) -> None:
    """In a freshly forked child of ``parent_pid``: get ``signal_`` (SIGKILL unless a child that
    must close its files cleanly asks for SIGTERM) when that parent dies; exit now if it has died
    already."""
    signal_when_parent_dies(signal_)
    if os.getppid() != parent_pid:  # died before the prctl took effect (reparented already)
        os._exit(1)


def signal_when_parent_dies(signal_: int) -> None:
    """Ask the kernel to send ``signal_`` to this process when its parent dies (Linux); elsewhere,
    or without ``prctl``, nothing: the caller's other watch (a pipe, a check of ``getppid``) remains.

    Covers only a parent that dies after the call: check the parent afterwards (as
    :func:`end_with_parent` does)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal_), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the pipe from the parent is the only watch
