"""Raw-socket device plumbing: a device that resets a connection must not fail when the client
reset it first."""

from __future__ import annotations

import asyncio
import socket
import struct

from iotscope.simulate.devices.accounts import ServiceStats
from iotscope.simulate.devices.connections import ConnectionTracker
from iotscope.simulate.devices.misbehaviour import misbehaviour_handler


def test_reset_after_the_client_reset_first_is_quiet():
    """The "reset" device sends its opening, pauses, then RSTs; a client (a survey) that read the
    opening and reset the connection itself during that pause must not make the device's handler fail."""

    async def main() -> list[dict]:
        loop = asyncio.get_running_loop()
        unhandled: list[dict] = []
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        tracker = ConnectionTracker()
        stats = ServiceStats()
        server = await asyncio.start_server(
            tracker.serve(misbehaviour_handler("ssh", "reset", seed=1), stats), "127.0.0.71", 0
        )
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.71", port)
            assert await reader.readexactly(8) == b"SSH-2.0-"
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()  # RST, before the device's own reset 0.05 s later
            await asyncio.sleep(0.3)
        finally:
            server.close()
            await tracker.close_all()
            await server.wait_closed()
        assert stats.connections == 1
        return unhandled

    assert asyncio.run(main()) == []
