"""RabbitMQ (Debian rabbitmq-server, pika client) on a private node started
and stopped by this script (own ports, data and logs in a temp dir).

  rabbitmq_bench.py cycle --runs 50000    durable classic queue, persistent messages, publisher
                                          confirms (batches of 100, 8 in flight), manual acks (one per message)
  rabbitmq_bench.py expiry --runs 20000   per-message TTL, dead-lettered to a DLX queue a consumer reads:
                                          N messages expiring at the same instant (lateness, drain rate), then
                                          the head-of-line case (short TTL behind a long one, no consumer)

Progress lines go to stderr; stdout gets one JSON object.
"""
import argparse
import json
import multiprocessing
import sys
import time

from procs import PrivateRabbit, percentile, say

DESCRIPTOR = {"org_id": "c" + "o" * 24, "project_id": "c" + "p" * 24, "environment_id": "c" + "e" * 24,
              "environment_type": "PRODUCTION", "queue": "task/my-background-task",
              "task_identifier": "my-background-task", "worker_queue": "main"}


def params(port):
    import pika
    return pika.ConnectionParameters("127.0.0.1", port, heartbeat=0, blocked_connection_timeout=600)


def run_id(n):
    return "run_c" + "rabbit00" + str(n).zfill(16)


def consume(port, queue, runs, prefetch, conn, field, auto_ack=False):
    """Consumes `runs` messages from `queue`, acking each (or in no-ack mode with
    `auto_ack`, like a subscriber); latency = receive - body[field]."""
    import pika
    connection = pika.BlockingConnection(params(port))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    latencies = []
    state = {"n": 0, "first": None, "last": None}

    def on_message(ch, method, properties, body):
        now = time.time()
        latencies.append((now - json.loads(body)[field]) * 1000)
        if not auto_ack:
            ch.basic_ack(method.delivery_tag)
        state["n"] += 1
        state["first"] = state["first"] or now
        state["last"] = now
        if state["n"] >= runs:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message, auto_ack=auto_ack)
    conn.send("ready")
    channel.start_consuming()
    connection.close()
    conn.send({"received": state["n"], "first": state["first"], "last": state["last"], "latencies": latencies})


def publish_confirmed(port, queue, runs, batch, window, conn):
    """Publishes `runs` persistent messages in batches; a batch is done when all of it is confirmed."""
    import pika
    batches = (runs + batch - 1) // batch
    confirmed = bytearray(runs + 1)  # by delivery tag (1-based, in publish order)
    remaining = [min(batch, runs - b * batch) for b in range(batches)]
    sent_at = [0.0] * batches
    latencies = []
    st = {"next": 0, "low": 1, "done": 0, "nacked": 0, "start": None, "end": None, "channel": None}
    props = pika.BasicProperties(delivery_mode=2)

    def send_batch():
        b = st["next"]
        if b >= batches:
            return
        st["next"] += 1
        t = time.time()
        sent_at[b] = time.perf_counter()
        for n in range(b * batch, b * batch + remaining[b]):
            body = json.dumps(dict(DESCRIPTOR, run_id=run_id(n), t=t))
            st["channel"].basic_publish("", queue, body, props)

    def confirm(tag):
        if confirmed[tag]:
            return
        confirmed[tag] = 1
        b = (tag - 1) // batch
        remaining[b] -= 1
        if remaining[b] == 0:
            latencies.append((time.perf_counter() - sent_at[b]) * 1000)
            st["done"] += 1
            if st["done"] == batches:
                st["end"] = time.time()
                connection.close()
            else:
                send_batch()

    def on_confirm(frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            st["nacked"] += 1
        tags = range(st["low"], method.delivery_tag + 1) if method.multiple else (method.delivery_tag,)
        for tag in tags:
            confirm(tag)
        while st["low"] <= runs and confirmed[st["low"]]:
            st["low"] += 1

    def on_confirm_mode(_frame):
        st["start"] = time.time()
        for _ in range(window):
            send_batch()

    def on_channel(channel):
        st["channel"] = channel
        channel.confirm_delivery(ack_nack_callback=on_confirm, callback=on_confirm_mode)

    connection = pika.SelectConnection(params(port), on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                       on_close_callback=lambda c, reason: c.ioloop.stop())
    connection.ioloop.start()
    conn.send({"start": st["start"], "end": st["end"], "nacked": st["nacked"], "calls": len(latencies),
               "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)})


def declare(port, queue, arguments=None):
    import pika
    connection = pika.BlockingConnection(params(port))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True, arguments=arguments)
    connection.close()


def cycle(rabbit, args):
    ctx = multiprocessing.get_context("spawn")
    declare(rabbit.port, "cycle")
    cparent, cchild = ctx.Pipe()
    pparent, pchild = ctx.Pipe()
    consumer = ctx.Process(target=consume, args=(rabbit.port, "cycle", args.runs, args.prefetch, cchild, "t"))
    consumer.start()
    if cparent.recv() != "ready":
        raise RuntimeError("consumer did not start")
    publisher = ctx.Process(target=publish_confirmed, args=(rabbit.port, "cycle", args.runs, args.batch, args.window, pchild))
    publisher.start()
    p = pparent.recv()
    c = cparent.recv()
    publisher.join()
    consumer.join()
    elapsed = c["last"] - p["start"]
    out = {"runs": args.runs, "received": c["received"], "nacked": p["nacked"], "batch": args.batch, "window": args.window,
           "prefetch": args.prefetch, "elapsed_s": round(elapsed, 2), "runs_per_s": round(c["received"] / elapsed, 1),
           "enqueue_s": round(p["end"] - p["start"], 2), "enqueue_runs_per_s": round(args.runs / (p["end"] - p["start"]), 1),
           "publish_batch_ms": {"p50": round(p["p50"], 2), "p99": round(p["p99"], 2), "calls": p["calls"]},
           "run_latency_ms": {"p50": round(percentile(c["latencies"], 0.5), 1), "p99": round(percentile(c["latencies"], 0.99), 1)}}
    say(f"RabbitMQ cycle: {c['received']} messages in {elapsed:.2f} s = {out['runs_per_s']:.0f} msg/s; publish+confirm({args.batch}) "
        f"p50 {p['p50']:.2f} p99 {p['p99']:.2f} ms; publish->ack p50 {out['run_latency_ms']['p50']} p99 {out['run_latency_ms']['p99']} ms")
    return out


def expiry(rabbit, args):
    import pika
    ctx = multiprocessing.get_context("spawn")
    dlx = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "exp.dlq"}
    declare(rabbit.port, "exp.dlq")
    declare(rabbit.port, "exp.q", dlx)
    cparent, cchild = ctx.Pipe()
    consumer = ctx.Process(target=consume, args=(rabbit.port, "exp.dlq", args.runs, 1000, cchild, "deadline", True))
    consumer.start()
    if cparent.recv() != "ready":
        raise RuntimeError("DLX consumer did not start")

    # N messages sharing one absolute deadline: each gets expiration = deadline - now.
    # Published without confirms (the deadline, not the publish rate, is measured here);
    # a passive declare afterwards is a round trip that follows every publish.
    connection = pika.BlockingConnection(params(rabbit.port))
    channel = connection.channel()
    t0 = time.time()
    deadline = t0 + args.lead
    for n in range(args.runs):
        now = time.time()
        body = json.dumps(dict(DESCRIPTOR, run_id=run_id(n), deadline=deadline))
        props = pika.BasicProperties(delivery_mode=2, expiration=str(max(0, int((deadline - now) * 1000))))
        channel.basic_publish("", "exp.q", body, props)
    channel.queue_declare("exp.q", passive=True)
    published = time.time() - t0
    connection.close()
    c = cparent.recv()
    consumer.join()
    lat = c["latencies"]
    drain_s = c["last"] - deadline
    drain = {"runs": args.runs, "received": c["received"], "publish_s": round(published, 2), "lead_s": args.lead,
             "published_before_deadline": published < args.lead,
             "lateness_ms": {"p50": round(percentile(lat, 0.5), 1), "p99": round(percentile(lat, 0.99), 1),
                             "max": round(max(lat), 1)},
             "drain_s": round(drain_s, 3), "drain_per_s": round(c["received"] / max(drain_s, 0.001), 1)}
    say(f"RabbitMQ per-message TTL, {args.runs} messages expiring at once: DLX lateness p50 {drain['lateness_ms']['p50']} "
        f"p99 {drain['lateness_ms']['p99']} ms; drained in {drain_s:.2f} s = {drain['drain_per_s']:.0f}/s")
    return {"drain": drain, "head_of_line": head_of_line(rabbit, args.long_ttl)}


def head_of_line(rabbit, long_ttl):
    """Message A (TTL long_ttl s) then B (TTL 1 s) in one queue with no consumer; when does B reach the DLX?"""
    import pika
    declare(rabbit.port, "hol.dlq")
    declare(rabbit.port, "hol.q", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "hol.dlq"})
    connection = pika.BlockingConnection(params(rabbit.port))
    channel = connection.channel()
    channel.confirm_delivery()
    t0 = time.time()
    channel.basic_publish("", "hol.q", json.dumps({"run_id": "A"}), pika.BasicProperties(delivery_mode=2, expiration=str(long_ttl * 1000)))
    channel.basic_publish("", "hol.q", json.dumps({"run_id": "B"}), pika.BasicProperties(delivery_mode=2, expiration="1000"))
    seen = {}
    counted_after_b_deadline = None
    reason = None
    for method, properties, body in channel.consume("hol.dlq", auto_ack=True, inactivity_timeout=0.1):
        now = time.time()
        if counted_after_b_deadline is None and now - t0 > 1.5:
            counted_after_b_deadline = channel.queue_declare("hol.q", passive=True).method.message_count
        if method is not None:
            name = json.loads(body)["run_id"]
            seen[name] = now - t0
            if name == "B":
                deaths = (properties.headers or {}).get("x-death") or [{}]
                reason = deaths[0].get("reason")
                reason = reason.decode() if isinstance(reason, bytes) else reason
        if "B" in seen or now - t0 > long_ttl + 15:
            break
    channel.cancel()
    connection.close()
    out = {"long_ttl_s": long_ttl, "short_ttl_s": 1, "b_dead_lettered_after_s": round(seen["B"], 2) if "B" in seen else None,
           "a_dead_lettered_after_s": round(seen["A"], 2) if "A" in seen else None,
           "queue_count_at_1_5_s": counted_after_b_deadline, "announced": "DLX message, x-death reason " + str(reason)}
    say(f"RabbitMQ head of line: 1 s TTL message behind a {long_ttl} s one, no consumer: dead-lettered after "
        f"{out['b_dead_lettered_after_s']} s (queue still counted {counted_after_b_deadline} messages at 1.5 s)")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cycle")
    c.add_argument("--runs", type=int, default=50_000)
    c.add_argument("--batch", type=int, default=100)
    c.add_argument("--window", type=int, default=8, help="batches in flight (ours: 2 connections x 4)")
    c.add_argument("--prefetch", type=int, default=800, help="unacked messages per consumer (ours: 4 x 2 dequeues x 100)")
    e = sub.add_parser("expiry")
    e.add_argument("--runs", type=int, default=20_000)
    e.add_argument("--lead", type=float, default=5.0, help="seconds from the first publish to the shared deadline")
    e.add_argument("--long-ttl", type=int, default=20, help="TTL (s) of the message at the head in the head-of-line case")
    args = parser.parse_args()
    rabbit = PrivateRabbit()
    try:
        say(f"private RabbitMQ {rabbit.version} on port {rabbit.port}")
        out = cycle(rabbit, args) if args.what == "cycle" else expiry(rabbit, args)
        out["rabbitmq_version"] = rabbit.version
    finally:
        rabbit.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
