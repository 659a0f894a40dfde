"""Reaching a Dask scheduler (``--scheduler``) within a bounded time, and saying what is at
the address when it is not one.

distributed's own connect has a timeout for the TCP connection (``Client(timeout=...)``,
``distributed.comm.timeouts.connect``) but then reads the other side's handshake without
one: a service that accepts connections and waits (an HTTP server) makes it wait forever,
and one that greets first (an SSH or SMTP banner) has its first 8 bytes read as a frame
length, an allocation of exabytes.  So a ``tcp://`` address is first probed here with a
plain socket and one deadline for the whole exchange: a Dask server greets at once with a
small msgpack handshake; anything else is named -- nothing listening, a host that does not
resolve or answer, an HTTP server, a banner, silence -- in a ``SchedulerError`` (a
``FieldError``: exit status 2 on the command line).  Then ``Client`` connects with the
same timeout, for the connection and its start.  Other schemes (tls, ws, ucx) go to
distributed directly, with that timeout.
"""
from __future__ import annotations

import socket
import struct
import time

from comparator.run.sweep import RequestError

# seconds for the whole connection: the TCP connect, the greeting and the Client's start
TIMEOUT = 10.0
# a Dask server greets within milliseconds: a peer silent this long is asked (on a second
# connection, HTTP_S at most) whether it speaks HTTP, then awaited until the deadline
GREETING_S = 4.0
HTTP_S = 2.0
HANDSHAKE_MAX = 1 << 20      # a handshake is about 60 bytes; a frame length beyond is no Dask
DASHBOARD = "the Dask dashboard serves HTTP (by default on port 8787; the scheduler listens " \
            "on 8786)"


class SchedulerError(RequestError):
    """The ``--scheduler`` address is not a reachable Dask scheduler: names the address and
    what was found there."""

    def __init__(self, address: str, allowed: str):
        super().__init__("--scheduler", address, allowed)


def _refuse(address: str, found: str) -> SchedulerError:
    return SchedulerError(address, f"a reachable Dask scheduler; found {found}")


def host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``tcp://HOST:PORT`` (``[::1]`` for IPv6)."""
    rest = address.split("://", 1)[1].split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SchedulerError(address, "tcp://HOST:PORT with a port from 1 to 65535")
    return host.strip("[]"), int(port)


def _show(data: bytes, n: int = 60) -> str:
    """The first line of ``data`` as text, when it is text."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")[:n]
    text = line.decode("ascii", "replace")
    if line and all(32 <= b < 127 for b in line):
        return repr(text) + ("..." if len(data.split(b"\n", 1)[0]) > n else "")
    return "bytes " + data[:12].hex(" ")


def _read(sock, n: int, deadline: float) -> bytes:
    """Up to ``n`` bytes, fewer when the peer closes or the deadline passes."""
    return _recv(sock, n, deadline)[0]


def _recv(sock, n: int, deadline: float) -> tuple[bytes, bool]:
    """(up to ``n`` bytes, whether the peer closed the connection)."""
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(out))
        except (socket.timeout, TimeoutError):
            return out, False
        except OSError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False


def _connect(address: str, host: str, port: int, deadline: float):
    left = max(0.01, deadline - time.monotonic())
    start = time.monotonic()
    try:
        return socket.create_connection((host, port), timeout=left)
    except socket.gaierror as err:
        raise _refuse(address, f"no such host: {host!r} does not resolve "
                               f"({err.strerror})") from None
    except ConnectionRefusedError:
        raise _refuse(address, f"nothing listening on port {port} of {host} (connection "
                               "refused)") from None
    except (socket.timeout, TimeoutError):
        raise _refuse(address, f"no answer within {time.monotonic() - start:.0f} s: the "
                               "host is down or a firewall drops the connection") from None
    except OSError as err:
        raise _refuse(address, f"an unreachable address ({err.strerror or err})") from None


def _greeting(address: str, data: bytes, sock, deadline: float) -> dict:
    """The handshake a Dask server sent (its first bytes ``data``), decoded; else what
    the bytes are, refused."""
    (size,) = struct.unpack("Q", data)     # distributed's frame length, native order
    if data.startswith(b"HTTP/"):
        raise _refuse(address, f"an HTTP server ({_show(data + _read(sock, 200, deadline))})"
                               f": {DASHBOARD}")
    if not 16 <= size <= HANDSHAKE_MAX:
        rest = _read(sock, 200, min(deadline, time.monotonic() + 0.5))
        raise _refuse(address, f"a service that greets with {_show(data + rest)}, not with "
                               "a Dask handshake")
    body = _read(sock, size, min(deadline, time.monotonic() + GREETING_S))
    if len(body) < size:
        raise _refuse(address, f"a service whose greeting ({_show(data + body)}) stops short "
                               "of a Dask handshake")
    try:
        from distributed.protocol import loads
        from distributed.protocol.utils import unpack_frames
        info = loads(unpack_frames(body), deserialize=False)
    except Exception:  # noqa: BLE001 -- any undecodable greeting is "not Dask"
        info = None
    if not isinstance(info, dict) or "pickle-protocol" not in info:
        raise _refuse(address, f"a service whose greeting ({_show(data + body)}) is not a "
                               "Dask handshake")
    return info


def _http(address: str, host: str, port: int, deadline: float) -> str | None:
    """The status line an HTTP server at the address answers a GET with, or None."""
    try:
        sock = _connect(address, host, port, deadline)
    except SchedulerError:
        return None
    with sock:
        try:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        except OSError:
            return None
        reply = _read(sock, 200, deadline)
    return _show(reply) if reply.startswith(b"HTTP/") else None


def probe(address: str, timeout: float = TIMEOUT) -> dict | None:
    """The handshake of the Dask server at the ``tcp://`` ``address`` (None for another
    scheme: distributed connects to it), within ``timeout`` seconds; else a
    ``SchedulerError`` saying what is there.  A peer silent for ``GREETING_S`` is asked,
    on a second connection, whether it speaks HTTP; if not, its greeting is awaited until
    the deadline (a busy scheduler may be slow to greet)."""
    if not address.startswith("tcp://"):
        return None
    host, port = host_port(address)
    deadline = time.monotonic() + timeout
    with _connect(address, host, port, deadline) as sock:
        data, closed = _recv(sock, 8, min(deadline, time.monotonic() + GREETING_S))
        if not data and not closed:
            status = _http(address, host, port, min(deadline, time.monotonic() + HTTP_S))
            if status is not None:
                raise _refuse(address, f"an HTTP server (it answers {status}): {DASHBOARD}")
            data, closed = _recv(sock, 8, deadline)
        if len(data) == 8:
            return _greeting(address, data, sock, deadline)
    if data:
        raise _refuse(address, f"a service that sent {_show(data)} and "
                               + ("closed the connection" if closed else "stopped"))
    if closed:
        raise _refuse(address, "a service that accepted the connection and closed it without "
                               "a word (a Dask scheduler greets at once)")
    raise _refuse(address, f"a service that accepted the connection but said nothing within "
                           f"{timeout:g} s (a Dask scheduler greets at once)")


def client(address: str, timeout: float = TIMEOUT):
    """A ``distributed.Client`` of the scheduler at ``address``, probed first (``probe``)
    and connected within ``timeout`` seconds; any failure is a ``SchedulerError``."""
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise SchedulerError(address, "needs Dask distributed: pip install "
                                      "'comparator[distributed]'") from None
    probe(address, timeout)
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}):
            c = Client(address, timeout=f"{timeout}s")
    except Exception as err:  # noqa: BLE001 -- whatever distributed raises, one line
        what = (f"a Dask server that is not a scheduler (a worker?): {type(err).__name__}: "
                f"{err}" if isinstance(err, TypeError) else f"{type(err).__name__}: {err}")
        raise _refuse(address, what) from None
    return c


__all__ = ["GREETING_S", "HTTP_S", "SchedulerError", "TIMEOUT", "client", "host_port", "probe"]
