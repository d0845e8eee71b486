"""A TCP proxy on loopback in front of the API server, to break the path between it and a client
the ways networks break: silently (frozen), or loudly (connections reset)."""

from __future__ import annotations

import socket
import struct
import threading
import time


class ApiProxy:
    """While `flowing` is clear, forwards nothing either way and closes nothing (a path that died
    silently). Until `reset_until` (monotonic), every new connection is reset at once (an API server
    restarting behind a load balancer); `drop` resets the connections open now."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.reset_until = 0.0
        self.resets = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self.flowing.set()
        self._listener.close()
        self.drop()

    def drop(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            try:  # wakes the pumps blocked in recv, which then close it (with a RST: linger 0)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self.reset_until:
                self.resets += 1
                _reset(downstream)
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open |= {downstream, upstream}
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with source, sink:
            while not self._closed.is_set():
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.flowing.wait()
                try:
                    sink.sendall(data)
                except OSError:
                    return


def _reset(connection: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN: linger on, timeout 0."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass
