"""A small synchronous client for runqueued.

Frames are a 4-byte big-endian length followed by one protobuf message
(runqueue.v1.Request to the server, runqueue.v1.Response back). Calls carry a
client-chosen non-zero call_id; `send` / `receive` let a caller pipeline many
calls on one connection, `call` is the one-at-a-time convenience.
"""
from __future__ import annotations

import socket
import struct
from typing import Dict, Iterable, List, Optional

from ._gen.runqueue.v1 import runqueue_pb2 as pb

StatusCode = pb.StatusCode


class RunQueueError(Exception):
    """A non-OK status from the server; `code` is the StatusCode number, `name` its name."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{pb.StatusCode.Name(code)}: {message}")
        self.code = code
        self.name = pb.StatusCode.Name(code)
        self.message = message


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int = 7420, timeout: float = 10.0,
                 max_frame_bytes: int = 64 << 20):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._next_id = 1
        self._max = max_frame_bytes
        self._early: Dict[int, pb.Response] = {}

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- framing -----------------------------------------------------------
    def send_raw(self, body: bytes) -> None:
        self._sock.sendall(struct.pack(">I", len(body)) + body)

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_response(self) -> pb.Response:
        (length,) = struct.unpack(">I", self._read_exact(4))
        if length == 0 or length > self._max:
            raise ConnectionError(f"invalid frame length {length}")
        response = pb.Response()
        response.ParseFromString(self._read_exact(length))
        return response

    # -- calls -------------------------------------------------------------
    def send(self, **call) -> int:
        """Sends one request without waiting; returns its call_id. Pass the
        oneof member by name, e.g. send(ping=pb.PingRequest(payload=b"x"))."""
        call_id = self._next_id
        self._next_id += 1
        self.send_raw(pb.Request(call_id=call_id, **call).SerializeToString())
        return call_id

    def receive(self, call_id: int) -> pb.Response:
        """Waits for the response to `call_id` (others that arrive first are kept)."""
        if call_id in self._early:
            return self._early.pop(call_id)
        while True:
            response = self.read_response()
            if response.call_id == call_id:
                return response
            self._early[response.call_id] = response

    def call(self, **call):
        """One call; returns the result message or raises RunQueueError."""
        response = self.receive(self.send(**call))
        if response.status.code != pb.OK:
            raise RunQueueError(response.status.code, response.status.message)
        return getattr(response, response.WhichOneof("result")) if response.WhichOneof("result") else None

    def hello(self, token: str = "", client_name: str = "python-client") -> pb.HelloResponse:
        return self.call(hello=pb.HelloRequest(token=token, client_name=client_name))

    def ping(self, payload: bytes = b"") -> bytes:
        return self.call(ping=pb.PingRequest(payload=payload)).payload
