"""BullMQ (the PyPI `bullmq` package, which runs BullMQ's own Lua scripts) on
a private redis-server started and stopped by this script.

  bullmq_bench.py memory --runs 100000   Redis used_memory delta / N for N waiting jobs
  bullmq_bench.py cycle --runs 50000     addBulk in batches, a Worker processes and completes them

Job ids are 29-byte run ids, like ours. Two payloads for memory: "empty"
(data {}: the job id alone identifies the run, as our lane keeps the rest once
per queue) and "descriptor" (data carries the run descriptor our clients send
with each run: org, project, environment, type, queue, task, worker queue).
The cycle uses the descriptor payload plus the send time.
Progress lines go to stderr; stdout gets one JSON object.
"""
import argparse
import asyncio
import json
import multiprocessing
import random
import string
import sys
import time
from importlib.metadata import version

from procs import PrivateRedis, percentile, say

ALPHABET = string.digits + string.ascii_lowercase


def cuid(rng, n=25):
    return "c" + "".join(rng.choice(ALPHABET) for _ in range(n - 1))


def fixture(runs, seed=7):
    rng = random.Random(seed)
    descriptor = {"org_id": cuid(rng), "project_id": cuid(rng), "environment_id": cuid(rng),
                  "environment_type": "PRODUCTION", "queue": "task/my-background-task",
                  "task_identifier": "my-background-task", "worker_queue": "main"}
    ids = ["run_" + cuid(rng) for _ in range(runs)]
    assert all(len(i) == 29 for i in ids)
    return descriptor, ids


async def in_chunks(items, batch, window, send):
    """`await send(chunk)` for `items` in chunks of `batch`, `window` calls in flight."""
    chunks = [items[i:i + batch] for i in range(0, len(items), batch)]
    nxt = 0

    async def loop():
        nonlocal nxt
        while nxt < len(chunks):
            chunk = chunks[nxt]
            nxt += 1
            await send(chunk)

    await asyncio.gather(*(loop() for _ in range(window)))


async def add_all(queue, jobs, batch, window):
    """addBulk `jobs` in chunks of `batch`, `window` calls in flight."""
    await in_chunks(jobs, batch, window, queue.addBulk)


async def memory(args):
    from bullmq import Queue
    descriptor, ids = fixture(args.runs)
    redis = PrivateRedis()
    out = {"runs": args.runs, "bullmq_version": version("bullmq"), "redis_version": redis.info("server")["redis_version"]}
    try:
        for label, data in (("empty", {}), ("descriptor", descriptor)):
            queue = Queue("bench", {"connection": {"host": "127.0.0.1", "port": redis.port}})
            await queue.add("warmup", {}, {"jobId": "warmup"})  # loads the scripts before the first reading
            redis.cli("FLUSHALL", "SYNC")
            before = redis.settled_memory()
            t0 = time.perf_counter()
            jobs = [{"name": "my-background-task", "data": data, "opts": {"jobId": i}} for i in ids]
            await add_all(queue, jobs, 500, 4)
            elapsed = time.perf_counter() - t0
            await queue.close()
            after = redis.settled_memory()
            waiting = int(redis.cli("LLEN", "bull:bench:wait").strip())
            if waiting != args.runs:
                raise RuntimeError(f"{waiting} waiting jobs, expected {args.runs}")
            per = (after - before) / args.runs
            out[label] = {"bytes_per_job": round(per, 1), "payload_bytes": len(json.dumps(data)), "load_s": round(elapsed, 2)}
            say(f"BullMQ {version('bullmq')} waiting jobs, data {label} ({len(json.dumps(data))} bytes JSON): {per:.1f} bytes/job "
                f"(used_memory {before} -> {after}, loaded in {elapsed:.2f} s)")
            redis.cli("FLUSHALL", "SYNC")
    finally:
        redis.close()
    return out


def run_worker(port, runs, concurrency, conn):
    async def main():
        from bullmq import Worker
        done = asyncio.get_running_loop().create_future()
        latencies = []
        state = {"n": 0, "last": 0.0}

        async def process(job, token):
            return None

        def completed(job, result):
            now = time.time()
            latencies.append((now - job.data["t"]) * 1000)
            state["n"] += 1
            state["last"] = now
            if state["n"] >= runs and not done.done():
                done.set_result(True)

        worker = Worker("cycle", process, {"connection": {"host": "127.0.0.1", "port": port},
                                           "concurrency": concurrency, "autorun": False})
        worker.on("completed", completed)
        task = asyncio.ensure_future(worker.run())
        conn.send("ready")
        try:
            await asyncio.wait_for(done, 600)
        finally:
            await worker.close()
            await asyncio.gather(task, return_exceptions=True)
        conn.send({"completed": state["n"], "last": state["last"], "p50": percentile(latencies, 0.5),
                   "p99": percentile(latencies, 0.99)})
    asyncio.run(main())


def run_producer(port, runs, batch, window, conn):
    async def main():
        from bullmq import Queue
        descriptor, ids = fixture(runs, seed=11)
        queue = Queue("cycle", {"connection": {"host": "127.0.0.1", "port": port}})
        latencies = []
        start = time.time()

        async def send(chunk):
            t = time.time()
            jobs = [{"name": "my-background-task", "data": dict(descriptor, run_id=i, t=t),
                     "opts": {"jobId": i, "removeOnComplete": True}} for i in chunk]
            t0 = time.perf_counter()
            await queue.addBulk(jobs)
            latencies.append((time.perf_counter() - t0) * 1000)

        await in_chunks(ids, batch, window, send)
        end = time.time()
        await queue.close()
        conn.send({"start": start, "end": end, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                   "calls": len(latencies)})
    asyncio.run(main())


def cycle(args):
    redis = PrivateRedis()
    ctx = multiprocessing.get_context("spawn")
    try:
        wparent, wchild = ctx.Pipe()
        pparent, pchild = ctx.Pipe()
        worker = ctx.Process(target=run_worker, args=(redis.port, args.runs, args.concurrency, wchild))
        worker.start()
        if wparent.recv() != "ready":
            raise RuntimeError("worker did not start")
        producer = ctx.Process(target=run_producer, args=(redis.port, args.runs, args.batch, args.window, pchild))
        producer.start()
        p = pparent.recv()
        w = wparent.recv()
        producer.join()
        worker.join()
        left = int(redis.cli("LLEN", "bull:cycle:wait").strip())
    finally:
        redis.close()
    elapsed = w["last"] - p["start"]
    out = {"runs": args.runs, "completed": w["completed"], "left_waiting": left, "batch": args.batch, "window": args.window,
           "concurrency": args.concurrency, "bullmq_version": version("bullmq"),
           "elapsed_s": round(elapsed, 2), "runs_per_s": round(w["completed"] / elapsed, 1),
           "enqueue_s": round(p["end"] - p["start"], 2), "enqueue_runs_per_s": round(args.runs / (p["end"] - p["start"]), 1),
           "addbulk_ms": {"p50": round(p["p50"], 2), "p99": round(p["p99"], 2), "calls": p["calls"]},
           "run_latency_ms": {"p50": round(w["p50"], 1), "p99": round(w["p99"], 1)}}
    say(f"BullMQ cycle: {w['completed']} jobs in {elapsed:.2f} s = {out['runs_per_s']:.0f} jobs/s; addBulk({args.batch}) p50 "
        f"{p['p50']:.2f} p99 {p['p99']:.2f} ms; add->completed p50 {w['p50']:.0f} p99 {w['p99']:.0f} ms")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--runs", type=int, default=100_000)
    c = sub.add_parser("cycle")
    c.add_argument("--runs", type=int, default=50_000)
    c.add_argument("--batch", type=int, default=100)
    c.add_argument("--window", type=int, default=8, help="addBulk calls in flight (ours: 2 connections x 4)")
    c.add_argument("--concurrency", type=int, default=100, help="Worker concurrency")
    args = parser.parse_args()
    out = asyncio.run(memory(args)) if args.what == "memory" else cycle(args)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
