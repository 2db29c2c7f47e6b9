"""The Python client, generated from proto/ by another protobuf implementation,
talks to the real server."""
import struct

import pytest

from runqueue_client import Client, RunQueueError, pb


def test_hello_reports_server_facts(server):
    with Client(*server) as c:
        hello = c.hello(client_name="pytest")
        assert hello.server_version.startswith("runqueued")
        assert hello.max_frame_bytes == 65536
        assert hello.shard_count == 16


def test_ping_echoes_payload(server):
    with Client(*server) as c:
        assert c.ping(b"\x00hello\xff") == b"\x00hello\xff"


def test_pipelined_pings_each_answered_once(server):
    with Client(*server) as c:
        ids = [c.send(ping=pb.PingRequest(payload=str(i).encode())) for i in range(500)]
        for i, call_id in enumerate(ids):
            r = c.receive(call_id)
            assert r.status.code == pb.OK and r.ping.payload == str(i).encode()


def test_garbage_body_is_invalid_argument_and_connection_stays_usable(server):
    with Client(*server) as c:
        c.send_raw(b"\xff\xff\xff")
        r = c.read_response()
        assert r.call_id == 0 and r.status.code == pb.INVALID_ARGUMENT
        assert c.ping(b"still") == b"still"


def test_request_without_a_method_is_unimplemented(server):
    with Client(*server) as c:
        c.send_raw(pb.Request(call_id=7).SerializeToString())
        r = c.receive(7)
        assert r.status.code == pb.UNIMPLEMENTED
        with pytest.raises(RunQueueError) as e:
            c.call()
        assert e.value.name == "UNIMPLEMENTED"


def test_oversize_frame_is_resource_exhausted_then_closed(server):
    with Client(*server) as c:
        c._sock.sendall(struct.pack(">I", 65537))
        r = c.read_response()
        assert r.call_id == 0 and r.status.code == pb.RESOURCE_EXHAUSTED
        with pytest.raises(ConnectionError):
            c.read_response()
