"""subscribe_expiry's reconnect-and-resume, against a scripted stand-in server.

The real runqueued answers SubscribeExpiry with UNIMPLEMENTED until the expiry
issue lands (test_methods.py checks that); these tests pin the client side of
the contract: where each (re)subscription starts, de-duplication by cursor,
which endings are retried and which raise, and that close() cancels."""
import socket
import struct
import threading

import pytest

from runqueue_client import Client, RunQueueError, pb


class ScriptedServer:
    """Serves each connection on its own thread; the i-th connection to send a
    request is served by scripts[i](request, conn), called for every request
    frame it receives (the Client's own idle connection takes no script)."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.requests = []  # (script index, Request)
        self.lock = threading.Lock()
        self.next_script = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn):
        index, buf = None, b""
        with conn:
            while True:
                try:
                    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                except OSError:
                    return
                length = struct.unpack(">I", buf[:4])[0]
                request = pb.Request()
                request.ParseFromString(buf[4:4 + length])
                buf = buf[4 + length:]
                with self.lock:
                    if index is None:
                        index, self.next_script = self.next_script, self.next_script + 1
                    self.requests.append((index, request))
                if index >= len(self.scripts):
                    return
                try:
                    if self.scripts[index](request, Conn(conn)) == "close":
                        return
                except OSError:
                    return

    def subscriptions(self):
        return [(i, r.subscribe_expiry) for i, r in self.requests if r.WhichOneof("call") == "subscribe_expiry"]

    def close(self):
        self.listener.close()


class Conn:
    def __init__(self, sock):
        self.sock = sock

    def send(self, response):
        body = response.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def started(self, call_id, live_from):
        self.send(pb.Response(call_id=call_id, subscribe_expiry=pb.SubscribeExpiryResponse(live_from_cursor=live_from)))

    def events(self, call_id, *cursors):
        for cursor in cursors:
            self.send(pb.Response(call_id=call_id, expiry_event=pb.ExpiryEvent(cursor=cursor, run_id=f"run-{cursor}")))

    def end(self, call_id, code, message=""):
        self.send(pb.Response(call_id=call_id, end_of_stream=True, status=pb.Status(code=code, message=message)))


def stream(live_from, cursors, then=None):
    """A script: start the subscription, send events, then `then(conn, call_id)`
    (default: drop the connection)."""
    def script(request, conn):
        if request.WhichOneof("call") != "subscribe_expiry":
            return None
        conn.started(request.call_id, live_from)
        conn.events(request.call_id, *cursors)
        if then is None:
            return "close"
        return then(conn, request.call_id)
    return script


def take(subscription, n):
    return [next(subscription).cursor for _ in range(n)]


def test_resumes_after_the_last_yielded_cursor_without_duplicates():
    server = ScriptedServer([
        stream(10, [11, 12, 13]),                                        # then drops the connection
        stream(13, [12, 13, 14, 15], then=lambda c, i: c.end(i, pb.UNAVAILABLE, "redis unreachable")),
        stream(15, [15, 16], then=lambda c, i: None),                    # stays open
    ])
    with Client("127.0.0.1", server.port) as c:
        with c.subscribe_expiry(org_id="o", queue="q/1") as sub:
            assert sub.live_from_cursor == 10
            assert take(sub, 6) == [11, 12, 13, 14, 15, 16]
            assert sub.last_cursor == 16 and sub.reconnects == 2
    subs = server.subscriptions()
    assert [(i, s.resume_after, s.replay) for i, s in subs] == [(0, 0, False), (1, 13, False), (2, 15, False)]
    assert all(s.filter == pb.ExpiryFilter(org_id="o", queue="q/1") for _, s in subs)
    server.close()


def test_close_cancels_the_stream():
    cancelled = threading.Event()

    def script(request, conn):
        kind = request.WhichOneof("call")
        if kind == "subscribe_expiry":
            conn.started(request.call_id, 5)
            conn.events(request.call_id, 6)
        elif kind == "cancel":
            cancelled.set()
    server = ScriptedServer([script])
    c = Client("127.0.0.1", server.port)
    sub = c.subscribe_expiry()
    assert next(sub).run_id == "run-6"
    sub.close()
    assert cancelled.wait(5)
    with pytest.raises(StopIteration):
        next(sub)
    c.close()
    server.close()


def test_a_live_subscription_that_yielded_nothing_resumes_where_it_went_live():
    server = ScriptedServer([stream(40, []), stream(40, [41], then=lambda c, i: None)])
    with Client("127.0.0.1", server.port).subscribe_expiry() as sub:
        assert take(sub, 1) == [41]
    assert [(s.resume_after, s.replay) for _, s in server.subscriptions()] == [(0, False), (40, False)]
    server.close()


def test_a_live_subscription_on_an_empty_log_resumes_with_replay():
    server = ScriptedServer([stream(0, []), stream(0, [1], then=lambda c, i: None)])
    with Client("127.0.0.1", server.port).subscribe_expiry() as sub:
        assert take(sub, 1) == [1]
    assert [(s.resume_after, s.replay) for _, s in server.subscriptions()] == [(0, False), (0, True)]
    server.close()


def test_replay_and_resume_after_are_kept_until_something_was_yielded():
    server = ScriptedServer([stream(9, []), stream(9, [3], then=lambda c, i: "close"),
                             stream(9, [4], then=lambda c, i: None)])
    with Client("127.0.0.1", server.port).subscribe_expiry(replay=True) as sub:
        assert take(sub, 2) == [3, 4]
    assert [(s.resume_after, s.replay) for _, s in server.subscriptions()] == [(0, True), (0, True), (3, False)]
    server.close()

    server = ScriptedServer([stream(9, []), stream(9, [8], then=lambda c, i: None)])
    with Client("127.0.0.1", server.port).subscribe_expiry(resume_after=7) as sub:
        assert take(sub, 1) == [8]
    assert [s.resume_after for _, s in server.subscriptions()] == [7, 7]
    server.close()


def test_out_of_range_on_resume_raises():
    def refuse(request, conn):
        conn.send(pb.Response(call_id=request.call_id, end_of_stream=True,
                              status=pb.Status(code=pb.OUT_OF_RANGE, message="resume_after 2 is below the oldest retained cursor 50")))
    server = ScriptedServer([stream(1, [2]), refuse])
    with Client("127.0.0.1", server.port).subscribe_expiry() as sub:
        assert take(sub, 1) == [2]
        with pytest.raises(RunQueueError) as e:
            next(sub)
        assert e.value.name == "OUT_OF_RANGE" and "oldest" in e.value.message
    server.close()


def test_an_error_ending_the_stream_raises():
    server = ScriptedServer([stream(1, [2], then=lambda c, i: c.end(i, pb.PERMISSION_DENIED, "environment e"))])
    with Client("127.0.0.1", server.port).subscribe_expiry() as sub:
        assert take(sub, 1) == [2]
        with pytest.raises(RunQueueError) as e:
            next(sub)
        assert e.value.name == "PERMISSION_DENIED"
    server.close()


def test_gives_up_after_max_reconnect_attempts_when_the_server_is_gone():
    server = ScriptedServer([stream(1, [2])])
    with Client("127.0.0.1", server.port).subscribe_expiry(max_reconnect_attempts=3) as sub:
        assert take(sub, 1) == [2]
        server.close()
        with pytest.raises(OSError):
            next(sub)


def test_reconnect_false_raises_on_disconnect():
    server = ScriptedServer([stream(1, [2])])
    with Client("127.0.0.1", server.port).subscribe_expiry(reconnect=False) as sub:
        assert take(sub, 1) == [2]
        with pytest.raises(ConnectionError):
            next(sub)
    server.close()


def test_close_from_another_thread_ends_a_blocked_iteration():
    server = ScriptedServer([stream(1, [], then=lambda c, i: None)])  # never sends an event, ignores cancel
    sub = Client("127.0.0.1", server.port).subscribe_expiry()
    threading.Timer(0.2, sub.close).start()
    assert list(sub) == []
    assert sub.closed
    server.close()


def test_an_event_that_ends_the_stream_is_delivered_then_resumed_after():
    def last_event(conn, call_id):
        conn.send(pb.Response(call_id=call_id, end_of_stream=True, expiry_event=pb.ExpiryEvent(cursor=4)))
    server = ScriptedServer([stream(1, [2, 3], then=last_event), stream(4, [5], then=lambda c, i: None)])
    with Client("127.0.0.1", server.port).subscribe_expiry() as sub:
        assert take(sub, 4) == [2, 3, 4, 5]
    assert [s.resume_after for _, s in server.subscriptions()] == [0, 4]
    server.close()


def test_a_pipelined_stream_keeps_every_response_in_order_while_another_call_is_read():
    def script(request, conn):
        if request.WhichOneof("call") == "subscribe_expiry":
            conn.started(request.call_id, 0)
            conn.events(request.call_id, 1, 2)
        elif request.WhichOneof("call") == "ping":
            conn.send(pb.Response(call_id=request.call_id, ping=pb.PingResponse(payload=request.ping.payload)))
    server = ScriptedServer([script])
    with Client("127.0.0.1", server.port) as c:
        stream_id = c.send(subscribe_expiry=pb.SubscribeExpiryRequest(replay=True))
        # The scripted server answers the Subscribe before it reads the Ping: its responses come first.
        ping_id = c.send(ping=pb.PingRequest(payload=b"p"))
        assert c.receive(ping_id).ping.payload == b"p"
        assert c.receive(stream_id).WhichOneof("result") == "subscribe_expiry"
        assert [c.receive(stream_id).expiry_event.cursor for _ in range(2)] == [1, 2]
    server.close()
