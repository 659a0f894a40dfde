"""Local stub servers for scheduler addresses: what a user might point ``--scheduler`` at
by mistake.  ``serve(kind)`` is a context manager giving ``tcp://127.0.0.1:PORT``."""
from __future__ import annotations

import contextlib
import http.server
import socket
import threading

KINDS = ("http", "banner", "silent", "closes", "garbage", "refused", "short")
BANNER = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"


def _answer(kind: str, conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        if kind == "banner":
            conn.sendall(BANNER)
        elif kind == "garbage":      # a frame length a Dask handshake never has, then noise
            conn.sendall(b"\xff" * 64)
        elif kind == "short":        # a plausible length, then too few bytes
            conn.sendall((40).to_bytes(8, "little") + b"\x01\x02")
        elif kind == "closes":
            return
        stop.wait(30)                # silent, banner, garbage, short: hold the connection


@contextlib.contextmanager
def serve(kind: str):
    if kind == "http":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 http.server.SimpleHTTPRequestHandler)
        server.RequestHandlerClass.log_message = lambda *a, **k: None
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            yield f"tcp://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if kind == "refused":            # the port was free a moment ago: nothing listens
        listener.close()
        yield f"tcp://127.0.0.1:{port}"
        return
    with _accepting(listener, lambda conn, stop: threading.Thread(
            target=_answer, args=(kind, conn, stop), daemon=True).start()) as address:
        yield address


@contextlib.contextmanager
def serve_greeting(data: bytes):
    """A server that sends ``data`` to each connection and closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))

    def greet(conn, stop):
        with conn:
            with contextlib.suppress(OSError):
                conn.sendall(data)

    with _accepting(listener, greet) as address:
        yield address


@contextlib.contextmanager
def _accepting(listener: socket.socket, handle):
    """Listen on the bound ``listener``, pass each connection to ``handle(conn, stop)`` in
    the accepting thread, and give the address; stop and close on exit."""
    listener.listen(16)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            handle(conn, stop)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
