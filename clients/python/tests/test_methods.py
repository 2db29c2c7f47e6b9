"""Every method the server implements today, through the Client's helpers,
against the real runqueued (see conftest.py). Names are unique per test."""
import math
import threading
import time

import pytest

from conftest import MAX_ATTEMPTS
from runqueue_client import Client, MessageSource, RunQueueError, pb


def status_of(call):
    with pytest.raises(RunQueueError) as e:
        call()
    return e.value


def test_from_address_and_connect(server):
    host, port = server
    with Client.from_address(f"{host}:{port}") as c:
        assert c.ping(b"a") == b"a"
    with Client.connect(host, port) as c:
        assert c.max_frame_bytes == 65536


def test_a_token_sends_hello_on_connect(server):
    with Client(*server, token="any-token-is-accepted-without-configured-tokens", client_name="pytest") as c:
        assert c._hello is not None and c.max_frame_bytes == 65536
        c.reconnect()
        assert c.ping(b"again") == b"again"


def test_enqueue_is_idempotent_and_read_message_finds_it(client, ids):
    first = client.enqueue(**ids.descriptor(1, ttl="10m", concurrency_key="ck-1"))
    assert first.created
    assert first.expires_at_ms > time.time() * 1000 + 9 * 60_000
    assert not client.enqueue(**ids.descriptor(1, ttl="10m", concurrency_key="ck-1")).created
    read = client.read_message(ids.run(1), ids.env)
    assert read.source == MessageSource.Value("REDIS_V4")
    assert read.message.run_id == ids.run(1)
    assert read.message.queue == ids.queue
    assert read.message.concurrency_key == "ck-1"
    assert read.message.environment_type == pb.PRODUCTION
    assert read.message.attempt == 0


def test_enqueue_accepts_a_dict_or_a_descriptor(client, ids):
    assert client.enqueue(ids.descriptor(1)).created
    assert client.enqueue(pb.RunDescriptor(**ids.descriptor(2)), ttl="1h").expires_at_ms > 0


def test_bad_ttl_is_invalid_argument_naming_ttl(client, ids):
    e = status_of(lambda: client.enqueue(**ids.descriptor(1, ttl="10 m")))
    assert e.name == "INVALID_ARGUMENT" and e.code == pb.INVALID_ARGUMENT
    assert "ttl" in e.message
    assert str(e).startswith("INVALID_ARGUMENT: ")
    assert status_of(lambda: client.read_message(ids.run(1), ids.env)).name == "NOT_FOUND"


@pytest.mark.parametrize("field,value", [("run_id", "has space"), ("environment_id", ""),
                                         ("worker_queue", "x" * 129), ("queue", "")])
def test_bad_identifier_is_invalid_argument_naming_the_field(client, ids, field, value):
    e = status_of(lambda: client.enqueue(**ids.descriptor(1, **{field: value})))
    assert e.name == "INVALID_ARGUMENT" and field in e.message


def test_enqueue_batch_reports_each_run_in_order(client, ids):
    runs = [ids.descriptor(0), ids.descriptor(1, ttl="10 m"), ids.descriptor(2), ids.descriptor(0)]
    results = client.enqueue_batch(runs)
    assert [r.status.code for r in results] == [pb.OK, pb.INVALID_ARGUMENT, pb.OK, pb.OK]
    assert [r.created for r in results] == [True, False, True, False]
    assert "ttl" in results[1].status.message
    assert client.queue_stats(ids.env, ids.queue).length == 2


def test_enqueue_batch_splits_by_frame_bytes_and_count(client, ids, monkeypatch):
    # ~450-byte descriptors: 1500 of them need ~11 frames of 64 KiB (and 2 by count alone).
    runs = [ids.descriptor(i, task_identifier="t" * 128, concurrency_key=f"{'k' * 120}{i % 3}") for i in range(1500)]
    frames = []
    real_send_raw = client.send_raw
    monkeypatch.setattr(client, "send_raw", lambda body: (frames.append(len(body)), real_send_raw(body)))
    results = client.enqueue_batch(runs)
    assert len(frames) > 2 and max(frames) <= client.max_frame_bytes
    assert len(results) == 1500
    assert all(r.status.code == pb.OK and r.created for r in results)
    assert client.queue_stats(ids.env, ids.queue).length == 1500


def test_enqueue_batch_names_bad_runs_by_their_index_in_the_whole_list(client, ids):
    runs = [ids.descriptor(i, task_identifier="t" * 128) for i in range(1200)]
    runs[1100]["ttl"] = "soon"
    results = client.enqueue_batch(runs)
    bad = [i for i, r in enumerate(results) if r.status.code != pb.OK]
    assert bad == [1100]
    assert results[1100].status.message.startswith("runs[1100]")


def test_enqueue_batch_of_nothing_is_invalid_argument(client):
    assert status_of(lambda: client.enqueue_batch([])).name == "INVALID_ARGUMENT"


def test_dequeue_leases_and_queue_stats_count(client, ids):
    client.enqueue_batch([ids.descriptor(i) for i in range(3)])
    stats = client.queue_stats(ids.env, ids.queue)
    assert (stats.length, stats.due, stats.in_flight) == (3, 3, 0)
    messages = client.dequeue(ids.worker_queue, max_runs=2, lease_ms=60_000)
    assert isinstance(messages, list) and len(messages) == 2
    assert {m.run_id for m in messages} <= {ids.run(i) for i in range(3)}
    now = time.time() * 1000
    assert all(now + 50_000 < m.lease_expires_at_ms <= now + 61_000 for m in messages)
    stats = client.queue_stats(ids.env)
    assert (stats.length, stats.in_flight) == (1, 2)
    assert client.dequeue(ids.worker_queue, max_runs=10)[0].run_id not in {m.run_id for m in messages}
    assert client.dequeue(ids.worker_queue, max_runs=10) == []


@pytest.mark.parametrize("kwargs,field", [(dict(max_runs=0), "max_runs"), (dict(max_runs=1001), "max_runs"),
                                          (dict(wait_ms=30_001), "wait_ms"), (dict(lease_ms=999), "lease_ms")])
def test_dequeue_arguments_out_of_range(client, ids, kwargs, field):
    e = status_of(lambda: client.dequeue(ids.worker_queue, **kwargs))
    assert e.name == "INVALID_ARGUMENT" and field in e.message


def test_long_poll_waits_then_answers_empty(client, ids):
    started = time.monotonic()
    assert client.dequeue(ids.worker_queue, wait_ms=300) == []
    assert time.monotonic() - started >= 0.25


def test_long_poll_is_woken_by_an_enqueue(server, client, ids):
    call_id = client.send(dequeue=pb.DequeueRequest(worker_queue=ids.worker_queue, max_runs=5, wait_ms=30_000))
    # A connection's calls are read in order: once this Ping is answered, the Dequeue is waiting.
    assert client.ping(b"barrier") == b"barrier"
    started = time.monotonic()
    with Client(*server) as producer:
        producer.enqueue(**ids.descriptor(1))
    response = client.receive(call_id)
    assert time.monotonic() - started < 20  # woken, not answered at the end of its wait
    assert response.status.code == pb.OK
    assert [m.run_id for m in response.dequeue.messages] == [ids.run(1)]


def test_ack_completes_once_and_fences_on_attempt(client, ids):
    client.enqueue(**ids.descriptor(1))
    (run,) = client.dequeue(ids.worker_queue)
    e = status_of(lambda: client.ack(run.run_id, run.environment_id, attempt=run.attempt + 1))
    assert e.name == "FAILED_PRECONDITION" and "attempt" in e.message
    assert client.ack(run.run_id, run.environment_id, attempt=run.attempt) is True
    assert client.ack(run.run_id, run.environment_id) is False
    assert status_of(lambda: client.read_message(run.run_id, run.environment_id)).name == "NOT_FOUND"
    assert client.queue_stats(ids.env).in_flight == 0


def test_nack_retries_then_dead_letters_and_redrive_requeues(client, ids):
    client.enqueue(**ids.descriptor(1))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        (run,) = client.dequeue(ids.worker_queue)
        assert run.attempt == attempt - 1
        result = client.nack(run.run_id, ids.env, retry_at_ms=1, attempt=run.attempt)
        assert result.attempt == attempt
        if attempt < MAX_ATTEMPTS:
            assert result.requeued and not result.dead_lettered
        else:
            assert not result.requeued and result.dead_lettered
    assert client.dequeue(ids.worker_queue) == []
    assert client.redrive(ids.run(1), ids.env) is True
    (run,) = client.dequeue(ids.worker_queue)
    assert run.attempt == 0
    e = status_of(lambda: client.redrive(ids.run(1), ids.env))
    assert e.name == "FAILED_PRECONDITION"
    assert client.ack(run.run_id, ids.env)


def test_nack_with_backoff_and_keep_attempt(client, ids):
    client.enqueue(**ids.descriptor(1))
    (run,) = client.dequeue(ids.worker_queue)
    result = client.nack(run.run_id, ids.env, keep_attempt=True)
    assert result.requeued and result.attempt == 0
    stats = client.queue_stats(ids.env, ids.queue)
    assert (stats.length, stats.due, stats.in_flight) == (1, 0, 0)  # backing off for at least 1 s
    assert client.nack(run.run_id, ids.env) == pb.NackResponse(requeued=False)  # not in flight


def test_heartbeat_extends_the_lease_and_needs_one(client, ids):
    client.enqueue(**ids.descriptor(1))
    client.enqueue(**ids.descriptor(2))
    first, second = client.dequeue(ids.worker_queue, max_runs=2, lease_ms=1000)
    deadline = client.heartbeat(first.run_id, ids.env, lease_ms=120_000, attempt=first.attempt)
    assert deadline > first.lease_expires_at_ms + 100_000
    e = status_of(lambda: client.heartbeat(ids.run(3), ids.env))
    assert e.name == "FAILED_PRECONDITION"
    assert "lease_ms" in status_of(lambda: client.heartbeat(first.run_id, ids.env, lease_ms=10)).message
    while time.time() * 1000 <= second.lease_expires_at_ms:  # until the second lease has lapsed
        time.sleep(0.02)
    assert status_of(lambda: client.heartbeat(second.run_id, ids.env)).name == "FAILED_PRECONDITION"
    assert client.ack(second.run_id, ids.env) is False
    assert client.ack(first.run_id, ids.env) is True


def test_queue_limit_caps_dequeue_and_clear_lifts_it(client, ids):
    client.enqueue_batch([ids.descriptor(i) for i in range(4)])
    client.set_concurrency_limit(ids.env, ids.queue, limit=1)
    assert client.queue_stats(ids.env, ids.queue).concurrency_limit == 1
    assert len(client.dequeue(ids.worker_queue, max_runs=10)) == 1
    assert client.dequeue(ids.worker_queue, max_runs=10) == []
    client.set_concurrency_limit(ids.env, ids.queue, clear=True)
    assert len(client.dequeue(ids.worker_queue, max_runs=10)) == 3


def test_environment_limit_with_burst(client, ids):
    client.set_concurrency_limit(ids.env, limit=4, burst_factor=1.5)
    assert client.queue_stats(ids.env).concurrency_limit == math.floor(4 * 1.5)
    # Each queue is capped by the limit without burst (4); the environment by floor(4 x 1.5).
    client.enqueue_batch([ids.descriptor(i, queue=f"{ids.queue}-{i % 2}") for i in range(10)])
    leased = client.dequeue(ids.worker_queue, max_runs=100)
    assert len(leased) == 6
    assert max(sum(m.queue == f"{ids.queue}-{q}" for m in leased) for q in (0, 1)) <= 4
    client.set_concurrency_limit(ids.env, clear=True)
    assert client.queue_stats(ids.env).concurrency_limit == 100  # the server default


def test_set_concurrency_limit_errors(client, ids):
    e = status_of(lambda: client.set_concurrency_limit(ids.env, ids.queue, limit=3, burst_factor=2))
    assert e.name == "INVALID_ARGUMENT" and "burst_factor" in e.message
    assert status_of(lambda: client.set_concurrency_limit(ids.env)).name == "INVALID_ARGUMENT"
    with pytest.raises(ValueError):
        client.set_concurrency_limit(ids.env, limit=1, clear=True)


def test_cancel_ends_a_long_poll_which_leases_nothing(client, ids):
    call_id = client.send(dequeue=pb.DequeueRequest(worker_queue=ids.worker_queue, max_runs=1, wait_ms=20_000))
    assert client.cancel(call_id) is True
    response = client.receive(call_id)
    assert response.status.code == pb.CANCELLED
    assert client.cancel(call_id) is False
    client.enqueue(**ids.descriptor(1))
    assert client.queue_stats(ids.env).in_flight == 0


def test_a_call_without_an_answer_in_time_is_deadline_exceeded(client, ids):
    e = status_of(lambda: client.call(timeout=0.2, dequeue=pb.DequeueRequest(
        worker_queue=ids.worker_queue, max_runs=1, wait_ms=5000)))
    assert e.name == "DEADLINE_EXCEEDED"
    # The abandoned long poll was cancelled and its late answer is dropped.
    client.enqueue(**ids.descriptor(1))
    assert client.ping(b"after") == b"after"
    assert [m.run_id for m in client.dequeue(ids.worker_queue)] == [ids.run(1)]


def test_get_run_unimplemented_or_the_postgres_record(client, ids):
    """UNIMPLEMENTED until the durable-records issue lands; then the record."""
    e = status_of(lambda: client.get_run(ids.run(1)))
    if e.name == "UNIMPLEMENTED":
        assert e.code == 12
        return
    assert e.name == "NOT_FOUND" and ids.run(1) in e.message
    assert "run_id" in status_of(lambda: client.get_run("bad id")).message
    client.enqueue(**ids.descriptor(1, ttl="1h"))
    deadline = time.time() + 5
    while True:  # the record may be written just after the enqueue answers
        try:
            record = client.get_run(ids.run(1))
            break
        except RunQueueError as error:
            if error.name != "NOT_FOUND" or time.time() > deadline:
                raise
            time.sleep(0.05)
    assert isinstance(record, pb.RunRecord)
    assert (record.run_id, record.environment_id, record.queue, record.ttl) == (ids.run(1), ids.env, ids.queue, "1h")
    assert record.status in (pb.QUEUED, pb.DEQUEUED) and record.expires_at_ms > record.created_at_ms


def test_subscribe_expiry_delivers_a_runs_expiry(client, ids):
    sub = client.subscribe_expiry(environment_id=ids.env)
    try:
        assert sub.live_from_cursor is not None
        client.enqueue(**ids.descriptor(0, ttl="1s"))
        run_id = ids.descriptor(0)["run_id"]
        # Close the subscription if nothing arrives in time, so a failure cannot hang the suite.
        timer = threading.Timer(15.0, sub.close)
        timer.start()
        try:
            event = next(iter(sub))
        finally:
            timer.cancel()
        assert event.run_id == run_id
        assert event.environment_id == ids.env
        assert event.ttl == "1s"
        assert event.cursor > sub.live_from_cursor
        assert event.expired_at_ms >= event.expires_at_ms
    finally:
        sub.close()
    assert client.ping(b"still usable") == b"still usable"


def test_worker_loop_processes_a_batch_exactly_once(server, client, ids):
    total = 300
    results = client.enqueue_batch([ids.descriptor(i) for i in range(total)])
    assert all(r.created for r in results)
    processed = []
    lock = threading.Lock()
    errors = []

    def worker():
        try:
            with Client(*server) as c:
                while True:
                    with lock:
                        if len(processed) >= total:
                            return
                    for run in c.dequeue(ids.worker_queue, max_runs=25, wait_ms=200, lease_ms=30_000):
                        assert c.ack(run.run_id, run.environment_id, attempt=run.attempt)
                        with lock:
                            processed.append(run.run_id)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sorted(processed) == sorted(ids.run(i) for i in range(total))
    stats = client.queue_stats(ids.env)
    assert (stats.length, stats.in_flight) == (0, 0)
