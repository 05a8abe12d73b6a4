"""A threaded TCP proxy on loopback that adds latency or cuts connections.

Owns: ``Proxy(target_host, target_port, delay=0.0, drop_after_bytes=None, fragment=None,
rate=None, rate_up=None, drop_up_after_bytes=None, rewrite_down=None)``. Each direction of each
connection has a reader thread that stamps chunks with their arrival time and a writer
thread that releases each chunk ``delay`` seconds later, so latency is added per
direction without serializing round trips (pipelined commands stay pipelined, ordering
is kept). Faults:

- ``drop_after_bytes`` cuts a connection once that many bytes went server -> client (a
  transfer dropped midway), ``drop_up_after_bytes`` once that many went client ->
  server (an upload dropped midway); each new connection gets the same allowance, so
  together they make a link that drops every N bytes; ``drop_all()`` cuts every live
  connection now;
- ``rate`` (bytes/s) throttles each direction of each connection, ``rate_up`` the
  client -> server direction alone (a slow upload): a slow link. What a client already
  sent keeps trickling to the server after the client died (as on a real link whose
  buffers hold it), which is how an APPEND lands late;
- ``rewrite_down`` gets each complete server -> client line (CRLF included) and returns
  what the client sees instead (a server or middlebox that answers wrongly), or None to
  cut the connection right before that line (e.g. an APPEND that landed but whose OK
  never arrived).

Used by tests and by the bench (delay=0.025 = 50 ms RTT).
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from typing import Callable, Deque

HOST = "127.0.0.1"


class _Pipe:
    """One direction: src -> dst, each chunk released `delay` seconds after it arrived."""

    def __init__(self, conn: "_Conn", src: socket.socket, dst: socket.socket,
                 upstream: bool) -> None:
        self.conn, self.src, self.dst, self.upstream = conn, src, dst, upstream
        self.queue: Deque[tuple[float, bytes]] = collections.deque()
        self.cond = threading.Condition()
        self.eof = False

    def read_loop(self) -> None:
        try:
            while True:
                data = self.src.recv(65536)
                if not data:
                    break
                with self.cond:
                    self.queue.append((time.monotonic() + self.conn.proxy.delay, data))
                    self.cond.notify()
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify()

    def write_loop(self) -> None:
        proxy = self.conn.proxy
        free_at = 0.0          # throttling: when the link is free for the next byte
        partial = b""          # rewrite_down: the start of a line not complete yet
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.eof:
                        self.cond.wait()
                    if not self.queue:
                        break
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not self.upstream and proxy.rewrite_down is not None:
                    data = partial + data
                    cut = data.rfind(b"\n") + 1
                    data, partial = data[:cut], data[cut:]
                    out = []
                    for line in data.splitlines(keepends=True):
                        new = proxy.rewrite_down(line)
                        if new is None:             # cut the connection before this line
                            self.dst.sendall(b"".join(out))
                            self.conn.close()
                            return
                        out.append(new)
                    data = b"".join(out)
                    if not data:
                        continue
                limit = proxy.drop_up_after_bytes if self.upstream else proxy.drop_after_bytes
                if limit is not None:
                    room = limit - (self.conn.up_bytes if self.upstream else self.conn.down_bytes)
                    if room <= 0:
                        self.conn.close()
                        return
                    if len(data) >= room:
                        self.dst.sendall(data[:room])
                        self.conn.count(self.upstream, room)
                        self.conn.close()
                        return
                rate = (proxy.rate_up or proxy.rate) if self.upstream else proxy.rate
                if rate:
                    # a slow link: each piece leaves when the previous one has gone through
                    for i in range(0, len(data), 16384):
                        piece = data[i:i + 16384]
                        now = time.monotonic()
                        start = max(free_at, now)
                        if start > now:
                            time.sleep(start - now)
                        self.dst.sendall(piece)
                        free_at = start + len(piece) / rate
                    self.conn.count(self.upstream, len(data))
                    continue
                if not self.upstream and proxy.fragment:
                    # a slow link: the client sees responses arrive in small pieces
                    for i in range(0, len(data), proxy.fragment):
                        self.dst.sendall(data[i:i + proxy.fragment])
                        time.sleep(0.002)
                else:
                    self.dst.sendall(data)
                self.conn.count(self.upstream, len(data))
        except OSError:
            pass
        # Half-close so the other side sees EOF after all delayed data went through.
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.conn.pipe_done()


class _Conn:
    def __init__(self, proxy: "Proxy", client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.up_bytes = 0
        self.down_bytes = 0
        self._done = 0
        self._lock = threading.Lock()
        self.closed = False
        self.pipes = [_Pipe(self, client, server, True), _Pipe(self, server, client, False)]

    def start(self) -> None:
        for p in self.pipes:
            for target in (p.read_loop, p.write_loop):
                threading.Thread(target=target, daemon=True, name="proxy-pipe").start()

    def count(self, upstream: bool, n: int) -> None:
        with self._lock:
            if upstream:
                self.up_bytes += n
            else:
                self.down_bytes += n
        self.proxy._count(upstream, n)

    def pipe_done(self) -> None:
        with self._lock:
            self._done += 1
            done = self._done == 2
        if done:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for p in self.pipes:
            with p.cond:
                p.eof = True
                p.queue.clear()
                p.cond.notify()
        self.proxy._forget(self)


class Proxy:
    """Listens on 127.0.0.1:<port> and forwards to target with optional delay / drops."""

    def __init__(self, target_host: str, target_port: int, delay: float = 0.0,
                 drop_after_bytes: int | None = None, fragment: int | None = None,
                 rate: float | None = None, rate_up: float | None = None,
                 drop_up_after_bytes: int | None = None,
                 rewrite_down: Callable[[bytes], bytes | None] | None = None) -> None:
        self.target = (target_host, target_port)
        self.delay = delay                       # seconds, each direction
        self.fragment = fragment                 # server -> client in pieces of this many bytes
        self.drop_after_bytes = drop_after_bytes  # per connection, server -> client
        self.drop_up_after_bytes = drop_up_after_bytes  # per connection, client -> server
        self.rate = rate                         # bytes/s per direction and connection
        self.rate_up = rate_up                   # bytes/s client -> server (overrides rate)
        self.rewrite_down = rewrite_down         # each server -> client line -> what is sent
        self.bytes_up = 0                        # client -> server, all connections
        self.bytes_down = 0                      # server -> client
        self.connections_total = 0
        self.refuse = False                      # True: accept and close at once
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(128)
        self.host = HOST
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept").start()

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._conns)

    def _count(self, upstream: bool, n: int) -> None:
        with self._lock:
            if upstream:
                self.bytes_up += n
            else:
                self.bytes_down += n

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, server)
            with self._lock:
                self._conns.add(conn)
                self.connections_total += 1
            conn.start()

    def drop_all(self) -> int:
        """Cut every live connection now; returns how many were cut."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        return len(conns)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept()
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        self.drop_all()

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
