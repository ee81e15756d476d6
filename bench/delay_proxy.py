"""A TCP proxy that adds latency: every chunk is held ``one_way`` seconds in each direction.

The kernel on the benchmark machine has no ``netem``, so round-trip time is
emulated in user space: one listening socket per upstream (``sshd``), and for
each connection two pumps that stamp every chunk with the time it may be
delivered and a writer per direction that releases chunks in order at that
time. Throughput is not limited (chunks are pipelined), only latency is added,
so a round trip costs ``2 * one_way`` more, like a longer cable.

Runs its asyncio loop on a background thread; ``DelayProxy.stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence


class DelayProxy:
    """Listen on ``(address, port 0)`` for each upstream; forward with added one-way delay."""

    def __init__(self, routes: Sequence[tuple[str, str, int]], one_way: float) -> None:
        """``routes``: ``(listen_address, upstream_address, upstream_port)`` per upstream."""
        self.routes = list(routes)
        self.one_way = one_way
        #: listen address -> the port the proxy got for it (after :meth:`start`)
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> DelayProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    async def _listen(self) -> None:
        for listen, upstream, upstream_port in self.routes:
            def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        upstream: str = upstream, upstream_port: int = upstream_port) -> None:
                task = asyncio.ensure_future(self._connection(reader, writer, upstream, upstream_port))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            server = await asyncio.start_server(handler, listen, 0, backlog=512)
            self._servers.append(server)
            self.ports[listen] = server.sockets[0].getsockname()[1]

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                          upstream: str, upstream_port: int) -> None:
        try:
            # The connection request's trip to the server: a real TCP handshake costs a round
            # trip before anything flows, and the server's first bytes come one way later.
            await asyncio.sleep(self.one_way)
            server_reader, server_writer = await asyncio.open_connection(upstream, upstream_port)
        except (OSError, asyncio.CancelledError):
            client_writer.close()
            return
        pipes = asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
        try:
            await pipes
        except (OSError, asyncio.CancelledError):
            pipes.cancel()
            await asyncio.gather(pipes, return_exceptions=True)
        finally:
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk delivered ``one_way`` after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def pump() -> None:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self.one_way, data))
                if not data:
                    return

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(pump(), deliver())
