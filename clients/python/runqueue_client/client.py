"""A small synchronous client for runqueued.

Frames are a 4-byte big-endian length followed by one protobuf message
(runqueue.v1.Request to the server, runqueue.v1.Response back). Calls carry a
client-chosen non-zero call_id; `send` / `receive` let a caller pipeline many
calls on one connection, `call` and the per-method helpers are the
one-at-a-time convenience.

Return values: a method whose response has exactly one field returns that
field as a plain Python value (`ping` -> bytes, `ack` / `redrive` / `cancel`
-> bool, `heartbeat` -> int, `dequeue` -> list of RunMessage, `enqueue_batch`
-> list of EnqueueResult, `get_run` -> RunRecord, `set_concurrency_limit` ->
None); every other method returns the generated response message
(`HelloResponse`, `EnqueueResponse`, `NackResponse`, `ReadMessageResponse`,
`QueueStatsResponse`), whose fields are attributes named as in the .proto.

Errors: a non-OK status raises RunQueueError (.code, .name, .message); a call
that gets no answer within the client's timeout raises RunQueueError with
DEADLINE_EXCEEDED (the call is cancelled on the server, best effort); a broken
connection raises ConnectionError (an OSError).

Threads: a Client is one connection with one read buffer and is NOT
thread-safe. Use it from one thread at a time (one Client per worker thread is
the simple way; connections are cheap).
"""
from __future__ import annotations

import collections
import random
import re
import socket
import struct
import time
from typing import Any, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, Union

from ._gen.runqueue.v1 import runqueue_pb2 as pb

StatusCode = pb.StatusCode
EnvironmentType = pb.EnvironmentType
RunStatus = pb.RunStatus
MessageSource = pb.MessageSource

DEFAULT_PORT = 7420
# protobuf overhead of a Request around its EnqueueBatch runs: call_id (tag +
# up to 10 varint bytes) + enqueue_batch (tag + up to 5 length bytes), rounded up.
_ENVELOPE_SLACK = 32
# Batches in flight at once while enqueue_batch pipelines its chunks.
_BATCH_WINDOW = 8
_RETRYABLE_STREAM_CODES = {pb.UNAVAILABLE, pb.CANCELLED, pb.OK, pb.ABORTED, pb.INTERNAL, pb.UNKNOWN}


class RunQueueError(Exception):
    """A non-OK status from the server; `code` is the StatusCode number, `name` its name."""

    def __init__(self, code: int, message: str):
        name = pb.StatusCode.Name(code) if code in pb.StatusCode.values() else str(code)
        super().__init__(f"{name}: {message}")
        self.code = code
        self.name = name
        self.message = message


def parse_address(address: str, default_port: int = DEFAULT_PORT) -> Tuple[str, int]:
    """'host:port', '[v6]:port', or a bare host (default port) -> (host, port)."""
    address = address.strip()
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", address)
    if match:
        return match.group(1), int(match.group(2) or default_port)
    if address.count(":") == 1:
        host, port = address.rsplit(":", 1)
        if not port.isdigit():
            raise ValueError(f"server address must be host:port, got {address!r}")
        return host or "127.0.0.1", int(port)
    if address.count(":") > 1:  # a bare IPv6 address
        return address, default_port
    if not address:
        raise ValueError("server address is empty")
    return address, default_port


def _descriptor(run: Union[Mapping[str, Any], "pb.RunDescriptor", None] = None, **fields: Any) -> "pb.RunDescriptor":
    if isinstance(run, pb.RunDescriptor):
        if fields:
            merged = pb.RunDescriptor()
            merged.CopyFrom(run)
            for key, value in fields.items():
                setattr(merged, key, value)
            return merged
        return run
    data = dict(run or {})
    data.update(fields)
    return pb.RunDescriptor(**data)


def _varint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


class Client:
    """One connection to runqueued. See the module docstring for return values,
    errors and threading.

    `timeout` (seconds) bounds connecting and each call's wait for its answer
    (a long-polling dequeue gets `wait_ms` on top). With `token`, Hello is sent
    right after connecting (runqueued ignores the token today: tokens are not
    implemented, and no call requires a Hello first).
    `max_response_bytes` is the largest response frame accepted.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: float = 10.0, *,
                 token: Optional[str] = None, client_name: str = "python-client",
                 max_response_bytes: int = 64 << 20):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.token = token
        self.client_name = client_name
        self._max = max_response_bytes
        self._sock: Optional[socket.socket] = None
        self._buf = bytearray()
        self._next_id = 1
        self._early: Dict[int, Deque[pb.Response]] = {}  # responses read while waiting for another call
        self._abandoned: Set[int] = set()
        self._hello: Optional[pb.HelloResponse] = None
        self._open()

    # -- construction --------------------------------------------------------
    @classmethod
    def connect(cls, host: str = "127.0.0.1", port: int = DEFAULT_PORT, **options: Any) -> "Client":
        """Connects to host:port; options as for the constructor."""
        return cls(host, port, **options)

    @classmethod
    def from_address(cls, address: str, **options: Any) -> "Client":
        """Connects to "host:port" (or "[::1]:port", or a bare host on port 7420)."""
        host, port = parse_address(address)
        return cls(host, port, **options)

    def _open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock = sock
        self._buf = bytearray()
        self._early.clear()
        self._abandoned.clear()
        self._hello = None
        if self.token is not None:
            self.hello(token=self.token, client_name=self.client_name)

    def reconnect(self) -> None:
        """Closes the connection (calls in flight are lost) and opens a new one
        to the same address, sending Hello again when a token was given."""
        self.close()
        self._open()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread
            except OSError:
                pass
            sock.close()

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<runqueue Client {self.host}:{self.port}{' closed' if self.closed else ''}>"

    # -- framing -------------------------------------------------------------
    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("the client is closed")
        return self._sock

    def send_raw(self, body: bytes) -> None:
        """Sends one frame with `body` as it is (no call id bookkeeping)."""
        sock = self._socket()
        sock.settimeout(self.timeout)
        sock.sendall(struct.pack(">I", len(body)) + body)

    def _fill(self, n: int, deadline: Optional[float]) -> None:
        sock = self._socket()
        while len(self._buf) < n:
            if deadline is None:
                sock.settimeout(None)
            else:  # past the deadline: still take what has already arrived
                sock.settimeout(max(0.0, deadline - time.monotonic()))
            try:
                chunk = sock.recv(max(65536, n - len(self._buf)))
            except BlockingIOError:
                raise socket.timeout("timed out") from None
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buf += chunk

    def read_response(self, timeout: Optional[float] = -1.0) -> pb.Response:
        """Reads the next response frame, whatever call it answers. `timeout`
        in seconds (-1: the client's timeout, None: wait forever); on timeout
        socket.timeout is raised and nothing is consumed, so a later read
        resumes cleanly."""
        if timeout is not None and timeout < 0:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._fill(4, deadline)
        (length,) = struct.unpack(">I", bytes(self._buf[:4]))
        if length == 0 or length > self._max:
            raise ConnectionError(f"invalid frame length {length}")
        self._fill(4 + length, deadline)
        body = bytes(self._buf[4:4 + length])
        del self._buf[:4 + length]
        response = pb.Response()
        response.ParseFromString(body)
        return response

    # -- pipelining primitives ------------------------------------------------
    def send(self, **call: Any) -> int:
        """Sends one request without waiting; returns its call_id. Pass the
        oneof member by name, e.g. send(ping=pb.PingRequest(payload=b"x"))."""
        call_id = self._next_id
        self._next_id += 1
        self.send_raw(pb.Request(call_id=call_id, **call).SerializeToString())
        return call_id

    def receive(self, call_id: int, timeout: Optional[float] = -1.0) -> pb.Response:
        """Waits for the next response to `call_id` (responses to other calls
        that arrive first are kept, in order, for their own receive; a stream
        sent with send() is read by calling receive again until a response
        has end_of_stream or a non-OK status). Returns the raw
        Response, whatever its status. `timeout` as for read_response.
        A call-id-0 error from the server (a frame it rejected) raises
        RunQueueError."""
        early = self._early.get(call_id)
        if early:
            response = early.popleft()
            if not early:
                del self._early[call_id]
            return response
        if timeout is not None and timeout < 0:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            response = self.read_response(timeout=remaining)
            if response.call_id == call_id:
                return response
            if response.call_id == 0 and response.status.code != pb.OK:
                raise RunQueueError(response.status.code, response.status.message)
            if response.call_id in self._abandoned:
                if not self._is_stream_item(response):
                    self._abandoned.discard(response.call_id)
                continue
            self._early.setdefault(response.call_id, collections.deque()).append(response)

    @staticmethod
    def _is_stream_item(response: pb.Response) -> bool:
        return response.WhichOneof("result") in ("expiry_event", "subscribe_expiry") and not response.end_of_stream

    def call(self, timeout: Optional[float] = -1.0, **call: Any) -> Any:
        """One unary call; returns the result message (None for an empty
        result) or raises RunQueueError. On timeout the call is cancelled on
        the server (best effort) and DEADLINE_EXCEEDED is raised."""
        if timeout is not None and timeout < 0:
            timeout = self.timeout
        call_id = self.send(**call)
        try:
            response = self.receive(call_id, timeout=timeout)
        except socket.timeout:
            self._abandon(call_id)
            raise RunQueueError(pb.DEADLINE_EXCEEDED, f"no answer within {timeout} s (call {call_id} abandoned)")
        if response.status.code != pb.OK:
            raise RunQueueError(response.status.code, response.status.message)
        which = response.WhichOneof("result")
        return getattr(response, which) if which else None

    def _abandon(self, call_id: int) -> None:
        self._abandoned.add(call_id)
        try:
            self._abandoned.add(self.send(cancel=pb.CancelRequest(target_call_id=call_id)))
        except OSError:
            pass

    # -- methods ---------------------------------------------------------------
    def hello(self, token: Optional[str] = None, client_name: Optional[str] = None) -> pb.HelloResponse:
        """HelloResponse(server_version, max_frame_bytes, shard_count); cached
        for max_frame_bytes. `token` defaults to the client's token."""
        token = self.token if token is None else token
        hello = self.call(hello=pb.HelloRequest(token=token or "", client_name=client_name or self.client_name))
        self._hello = hello
        return hello

    @property
    def max_frame_bytes(self) -> int:
        """The server's frame limit (from Hello; sends Hello once if needed)."""
        if self._hello is None:
            self.hello()
        return self._hello.max_frame_bytes

    def ping(self, payload: bytes = b"") -> bytes:
        """Echoes `payload`."""
        return self.call(ping=pb.PingRequest(payload=payload)).payload

    def enqueue(self, run: Union[Mapping[str, Any], "pb.RunDescriptor", None] = None, **fields: Any) -> pb.EnqueueResponse:
        """Enqueues one run; descriptor fields as keywords (run_id, org_id,
        project_id, environment_id, environment_type (int or name such as
        "PRODUCTION"), queue, concurrency_key, task_identifier, worker_queue,
        timestamp_ms, priority_ms, ttl) or a dict / RunDescriptor.
        Returns EnqueueResponse(created, expires_at_ms)."""
        return self.call(enqueue=pb.EnqueueRequest(run=_descriptor(run, **fields)))

    def enqueue_batch(self, runs: Iterable[Union[Mapping[str, Any], "pb.RunDescriptor"]]) -> List[pb.EnqueueResult]:
        """Enqueues many runs: a list of dicts (descriptor fields) or
        RunDescriptors. Split into calls of at most 1000 runs that fit
        Hello.max_frame_bytes, pipelined on this connection. Returns one
        EnqueueResult(status, created, expires_at_ms) per run, in order; a bad
        run gets its own non-OK status (its message names it as runs[i], i
        being its index in `runs`) and does not stop the others. An empty list
        raises INVALID_ARGUMENT, as the server does."""
        descriptors = [_descriptor(run) for run in runs]
        if not descriptors:
            return list(self.call(enqueue_batch=pb.EnqueueBatchRequest()).results)
        limit = self.max_frame_bytes - _ENVELOPE_SLACK
        chunks: List[Tuple[int, List[pb.RunDescriptor]]] = []
        start, size, current = 0, 0, []  # type: int, int, List[pb.RunDescriptor]
        for index, run in enumerate(descriptors):
            body = run.ByteSize()
            item = 1 + _varint_size(body) + body
            if item > limit:
                raise RunQueueError(pb.RESOURCE_EXHAUSTED,
                                    f"runs[{index}] is {body} bytes, too large for max_frame_bytes {self.max_frame_bytes}")
            if current and (size + item > limit or len(current) == 1000):
                chunks.append((start, current))
                start, size, current = index, 0, []
            current.append(run)
            size += item
        chunks.append((start, current))

        results: List[Optional[pb.EnqueueResult]] = [None] * len(descriptors)
        pending: Deque[Tuple[int, int, int]] = collections.deque()  # (call id, start, count)

        def collect() -> None:
            call_id, offset, count = pending.popleft()
            try:
                response = self.receive(call_id)
            except socket.timeout:
                self._abandon(call_id)
                raise RunQueueError(pb.DEADLINE_EXCEEDED, f"no answer within {self.timeout} s")
            if response.status.code != pb.OK:
                for other, _, _ in pending:
                    self._abandoned.add(other)
                raise RunQueueError(response.status.code, response.status.message)
            for local, result in enumerate(response.enqueue_batch.results):
                prefix = f"runs[{local}]"
                if offset and result.status.message.startswith(prefix):
                    result.status.message = f"runs[{offset + local}]" + result.status.message[len(prefix):]
                results[offset + local] = result
            if len(response.enqueue_batch.results) != count:
                raise RunQueueError(pb.INTERNAL, f"EnqueueBatch answered {len(response.enqueue_batch.results)} results for {count} runs")

        for offset, chunk in chunks:
            pending.append((self.send(enqueue_batch=pb.EnqueueBatchRequest(runs=chunk)), offset, len(chunk)))
            if len(pending) >= _BATCH_WINDOW:
                collect()
        while pending:
            collect()
        return results  # type: ignore[return-value]

    def dequeue(self, worker_queue: str, max_runs: int = 1, wait_ms: int = 0, lease_ms: int = 0) -> List[pb.RunMessage]:
        """Leases up to `max_runs` (1..1000) due runs of `worker_queue`; with
        none available waits up to `wait_ms` (0..30000). `lease_ms` 0 = the
        server default, else 1000..86400000. Returns a list of RunMessage
        (run_id, environment_id, attempt, lease_expires_at_ms, ...), maybe empty."""
        request = pb.DequeueRequest(worker_queue=worker_queue, max_runs=max_runs, wait_ms=wait_ms, lease_ms=lease_ms)
        return list(self.call(timeout=self.timeout + wait_ms / 1000.0, dequeue=request).messages)

    @staticmethod
    def _fenced(message: Any, attempt: Optional[int]) -> Any:
        if attempt is not None:
            message.attempt = attempt
        return message

    def ack(self, run_id: str, environment_id: str, attempt: Optional[int] = None) -> bool:
        """Completes an in-flight run. False: it was not in flight. `attempt`
        fences on the run's current attempt (FAILED_PRECONDITION on mismatch)."""
        request = self._fenced(pb.AckRequest(run_id=run_id, environment_id=environment_id), attempt)
        return self.call(ack=request).acked

    def nack(self, run_id: str, environment_id: str, retry_at_ms: int = 0, keep_attempt: bool = False,
             attempt: Optional[int] = None) -> pb.NackResponse:
        """Gives an in-flight run back (retry at `retry_at_ms`, 0 = backoff).
        Returns NackResponse(requeued, attempt, dead_lettered)."""
        request = self._fenced(pb.NackRequest(run_id=run_id, environment_id=environment_id,
                                              retry_at_ms=retry_at_ms, keep_attempt=keep_attempt), attempt)
        return self.call(nack=request)

    def heartbeat(self, run_id: str, environment_id: str, lease_ms: int = 0, attempt: Optional[int] = None) -> int:
        """Extends an in-flight run's lease; returns the new lease deadline
        (ms since the epoch). Not in flight: FAILED_PRECONDITION."""
        request = self._fenced(pb.HeartbeatRequest(run_id=run_id, environment_id=environment_id, lease_ms=lease_ms), attempt)
        return self.call(heartbeat=request).lease_expires_at_ms

    def read_message(self, run_id: str, environment_id: str) -> pb.ReadMessageResponse:
        """ReadMessageResponse(message: RunMessage, source: MessageSource); NOT_FOUND if unknown."""
        return self.call(read_message=pb.ReadMessageRequest(run_id=run_id, environment_id=environment_id))

    def get_run(self, run_id: str) -> pb.RunRecord:
        """The run's PostgreSQL record (RunRecord)."""
        return self.call(get_run=pb.GetRunRequest(run_id=run_id)).run

    def queue_stats(self, environment_id: str, queue: str = "", concurrency_key: str = "") -> pb.QueueStatsResponse:
        """QueueStatsResponse(length, due, in_flight, oldest_age_ms, concurrency_limit)
        for a queue, or the whole environment when `queue` is empty."""
        return self.call(queue_stats=pb.QueueStatsRequest(environment_id=environment_id, queue=queue,
                                                          concurrency_key=concurrency_key))

    def set_concurrency_limit(self, environment_id: str, queue: str = "", *, limit: Optional[int] = None,
                              clear: bool = False, burst_factor: float = 0.0) -> None:
        """Sets (`limit=`) or removes (`clear=True`) the limit of `queue`, or of
        the environment when `queue` is empty (`burst_factor`: environment
        only, 0 = unchanged). Exactly one of limit / clear."""
        if limit is not None and clear:
            raise ValueError("pass either limit= or clear=True, not both")
        request = pb.SetConcurrencyLimitRequest(environment_id=environment_id, queue=queue, burst_factor=burst_factor)
        if limit is not None:
            request.limit = limit
        elif clear:
            request.clear = True
        self.call(set_concurrency_limit=request)

    def redrive(self, run_id: str, environment_id: str) -> bool:
        """Requeues a dead-lettered run with attempt 0 (FAILED_PRECONDITION otherwise)."""
        return self.call(redrive=pb.RedriveRequest(run_id=run_id, environment_id=environment_id)).requeued

    def cancel(self, target_call_id: int) -> bool:
        """Cancels a call in progress on this connection (a long poll sent with
        send(), a stream). False: no such call in progress. The cancelled
        call's own answer (status CANCELLED) still arrives for receive()."""
        return self.call(cancel=pb.CancelRequest(target_call_id=target_call_id)).cancelled

    def subscribe_expiry(self, org_id: str = "", project_id: str = "", environment_id: str = "", queue: str = "",
                         *, resume_after: int = 0, replay: bool = False, reconnect: bool = True,
                         max_reconnect_delay: float = 5.0, max_reconnect_attempts: Optional[int] = None
                         ) -> "ExpirySubscription":
        """Subscribes to expiry events matching the filter (empty fields match
        everything) and returns an iterator of ExpiryEvent. It uses its own
        connection to this client's address (so this Client stays usable) and,
        after a disconnect, reconnects with backoff and resumes after the last
        cursor it yielded, skipping any cursor it already yielded. The
        subscription is acknowledged before this returns: errors such as
        UNIMPLEMENTED, OUT_OF_RANGE or INVALID_ARGUMENT raise here."""
        expiry_filter = pb.ExpiryFilter(org_id=org_id, project_id=project_id, environment_id=environment_id, queue=queue)
        return ExpirySubscription(self.host, self.port, expiry_filter, resume_after=resume_after, replay=replay,
                                  token=self.token, client_name=self.client_name, timeout=self.timeout,
                                  reconnect=reconnect, max_reconnect_delay=max_reconnect_delay,
                                  max_reconnect_attempts=max_reconnect_attempts)


class ExpirySubscription:
    """An iterator of ExpiryEvent from one SubscribeExpiry stream that survives
    disconnects. Attributes: `last_cursor` (the last cursor yielded, 0 if
    none; pass it as resume_after to a later subscription to continue where
    this one stopped), `live_from_cursor` (from the first subscription),
    `reconnects`. `close()` (or leaving a `with` block) cancels the stream and
    closes its connection; iteration then stops. close() may be called from
    another thread to end an iteration blocked waiting for events; nothing
    else about it is thread-safe.

    Retried with backoff (up to `max_reconnect_attempts`, None = forever): a
    lost connection, a refused reconnect, UNAVAILABLE, and a stream the server
    ends on its own (end_of_stream with OK, CANCELLED, UNAVAILABLE, ABORTED,
    INTERNAL or UNKNOWN). Raised as RunQueueError: any other status, e.g.
    OUT_OF_RANGE when the cursor to resume after is no longer retained."""

    def __init__(self, host: str, port: int, expiry_filter: "pb.ExpiryFilter", *, resume_after: int = 0,
                 replay: bool = False, token: Optional[str] = None, client_name: str = "python-client",
                 timeout: float = 10.0, reconnect: bool = True, max_reconnect_delay: float = 5.0,
                 max_reconnect_attempts: Optional[int] = None):
        self.host, self.port = host, port
        self.filter = expiry_filter
        self._resume_after = resume_after
        self._replay = replay
        self._token = token
        self._client_name = client_name
        self._timeout = timeout
        self._reconnect = reconnect
        self._max_delay = max_reconnect_delay
        self._max_attempts = max_reconnect_attempts
        self.last_cursor = 0
        self.live_from_cursor: Optional[int] = None
        self.reconnects = 0
        self._client: Optional[Client] = None
        self._call_id = 0
        self._closed = False
        self._subscribe()

    @property
    def closed(self) -> bool:
        return self._closed

    def _request(self) -> "pb.SubscribeExpiryRequest":
        """Where the next (re)subscription starts, so nothing is missed."""
        if self.last_cursor:
            return pb.SubscribeExpiryRequest(filter=self.filter, resume_after=self.last_cursor)
        if self._replay:
            return pb.SubscribeExpiryRequest(filter=self.filter, replay=True)
        if self._resume_after:
            return pb.SubscribeExpiryRequest(filter=self.filter, resume_after=self._resume_after)
        if self.live_from_cursor is not None:
            # A live subscription that has yielded nothing yet resumes where it went live.
            if self.live_from_cursor == 0:  # the log was empty then: everything retained is new
                return pb.SubscribeExpiryRequest(filter=self.filter, replay=True)
            return pb.SubscribeExpiryRequest(filter=self.filter, resume_after=self.live_from_cursor)
        return pb.SubscribeExpiryRequest(filter=self.filter)

    def _subscribe(self) -> None:
        """Connects and waits for the subscription's first response."""
        client = Client(self.host, self.port, timeout=self._timeout, token=self._token, client_name=self._client_name)
        try:
            call_id = client.send(subscribe_expiry=self._request())
            response = client.receive(call_id)
            if response.status.code != pb.OK:
                raise RunQueueError(response.status.code, response.status.message)
            if response.WhichOneof("result") != "subscribe_expiry":
                raise RunQueueError(pb.INTERNAL, f"SubscribeExpiry began with {response.WhichOneof('result')!r}")
        except BaseException:
            client.close()
            raise
        if self.live_from_cursor is None:
            self.live_from_cursor = response.subscribe_expiry.live_from_cursor
        self._client, self._call_id = client, call_id

    def _resubscribe(self, cause: BaseException) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self._reconnect:
            raise cause
        delay, attempts = 0.05, 0
        while not self._closed:
            attempts += 1
            try:
                self._subscribe()
                self.reconnects += 1
                return
            except RunQueueError as error:
                if error.code != pb.UNAVAILABLE:
                    raise
                cause = error
            except OSError as error:  # refused, reset, timed out
                cause = error
            if self._max_attempts is not None and attempts >= self._max_attempts:
                raise cause
            time.sleep(delay * (1 + random.random()) / 2 + delay / 2)
            delay = min(self._max_delay, delay * 2)
        raise StopIteration

    def __iter__(self) -> Iterator["pb.ExpiryEvent"]:
        return self

    def __next__(self) -> "pb.ExpiryEvent":
        try:
            return self._next()
        except BaseException:
            self.close()  # an error that was not retried, or the end: the subscription is over
            raise

    def _next(self) -> "pb.ExpiryEvent":
        while not self._closed:
            if self._client is None:
                self._resubscribe(ConnectionError("not connected"))
                continue
            try:
                response = self._client.receive(self._call_id, timeout=None)
            except (OSError, RunQueueError) as error:
                if self._closed:
                    break
                if isinstance(error, RunQueueError) and error.code not in _RETRYABLE_STREAM_CODES:
                    raise
                self._resubscribe(error)
                continue
            kind = response.WhichOneof("result")
            if kind == "expiry_event" and response.status.code == pb.OK:
                event = response.expiry_event
                if response.end_of_stream:  # the last event of a stream the server ended: resume after it
                    self._client.close()
                    self._client = None
                if event.cursor > self.last_cursor:
                    self.last_cursor = event.cursor
                    return event
                continue  # a duplicate after a resume
            if response.end_of_stream or response.status.code != pb.OK:
                if self._closed:
                    break
                if response.status.code in _RETRYABLE_STREAM_CODES:
                    # The server ended the stream (shutting down, store trouble): resume.
                    self._resubscribe(RunQueueError(response.status.code, response.status.message or "stream ended"))
                    continue
                self.close()
                raise RunQueueError(response.status.code, response.status.message)
        raise StopIteration

    def close(self) -> None:
        """Cancels the stream (best effort) and closes its connection."""
        if self._closed:
            return
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            try:
                client.send(cancel=pb.CancelRequest(target_call_id=self._call_id))
            except OSError:
                pass
            client.close()

    def __enter__(self) -> "ExpirySubscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
