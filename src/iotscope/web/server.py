"""Running the application under uvicorn, so that Ctrl-C or SIGTERM stops it within a second or two.

Why a subclass: uvicorn waits for open requests before it stops, and an ``/api/live`` stream never
ends by itself. On the exit signal we raise ``app.state.stopping``, which every stream checks
once a poll; they end cleanly, and shutdown completes without cancelling (and logging) anything.
"""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.stopping = True
        super().handle_exit(sig, frame)


def run(app: FastAPI, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until a signal asks to stop."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)
    _Server(config, app).run()
