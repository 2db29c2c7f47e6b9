#!/usr/bin/env python3
"""make bench-compare: runqueue side by side with the reference key layout,
BullMQ and RabbitMQ on this machine, in one run; writes bench/RESULTS.md.

Installs what is missing (apt: rabbitmq-server, not left running as a
service; pip: bullmq, pika), then, each part starting and stopping what it
needs by pid:
 1. memory per pending run: runqueue-bench-memory --json (ours in each format
    and the reference layout, private redis) and peers/bullmq_bench.py memory;
 2. full cycle: runqueue-bench-cycle (with the redis-benchmark EVALSHA
    ceiling), peers/bullmq_bench.py cycle, peers/rabbitmq_bench.py cycle;
 3. expiry: runqueue-load expiry (lateness), runqueue-bench-expiry (drain of
    runs due at one instant) and a head-of-line probe through the Python
    client, against peers/rabbitmq_bench.py expiry;
 4. scale: runqueue-bench-scale (10,000 vs 1,000,000 pending runs).
Ours runs on a private redis-server and a fresh PostgreSQL database on the
local server (created here, dropped at the end). One line per figure on
stdout. Expects the release products built (the Makefile target does that).

usage: bench/compare.py [--cycle-runs 50000] [--cycle-repeats 2] [--memory-runs 100000] [--expiry-runs 20000]
                        [--scale-levels 10000,1000000] [--long-ttl 20] [--results bench/RESULTS.md]
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from procs import PrivateRedis, free_port, stop, wait_for_port  # noqa: E402

RELEASE = os.path.join(ROOT, ".build", "release")
PEERS = os.path.join(ROOT, "bench", "peers")
lines = []  # every figure line, for RESULTS.md


def out(line=""):
    print(line, flush=True)
    lines.append(line)


def ensure_installed():
    if not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        print("installing rabbitmq-server (apt)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "rabbitmq-server"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        # The package may start its system service; the benchmark runs its own node.
        subprocess.run(["service", "rabbitmq-server", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    missing = [m for m in ("bullmq", "pika") if importlib.util.find_spec(m) is None]
    if missing:
        print("installing " + " ".join(missing) + " (pip)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore", *missing], check=True)
    if importlib.util.find_spec("google.protobuf") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore", "protobuf"], check=True)


def run(cmd, env=None, timeout=1800):
    """Runs a program; returns its stdout (stderr passes through to ours)."""
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited with {result.returncode}:\n{result.stdout[-2000:]}")
    return result.stdout


def json_of(text):
    return json.loads(text.strip().splitlines()[-1])


def peer(script, *args):
    return json_of(run([sys.executable, os.path.join(PEERS, script), *args]))


def ratio(a, b):
    return a / b if b else float("nan")


class Database:
    """A fresh database on the local PostgreSQL, dropped by close()."""

    def __init__(self, admin_url):
        self.admin_url = admin_url
        self.name = f"runqueue_bench_{os.getpid()}"
        self.psql(f"CREATE DATABASE {self.name}")
        self.url = admin_url.rsplit("/", 1)[0] + "/" + self.name

    def psql(self, sql):
        return subprocess.run(["psql", self.admin_url, "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()

    def close(self):
        self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class Server:
    """runqueued (release) on a free port against the given Redis and database."""

    def __init__(self, redis_url, database_url):
        self.port = free_port()
        env = dict(os.environ, RUNQUEUE_REDIS_URL=redis_url, RUNQUEUE_DATABASE_URL=database_url,
                   RUNQUEUE_LISTEN=f"127.0.0.1:{self.port}", RUNQUEUE_LOG_LEVEL="error")
        self.proc = subprocess.Popen([os.path.join(RELEASE, "runqueued")], env=env)
        try:
            wait_for_port(self.port, 60, self.proc)
            self.wait_ready()
        except Exception:
            stop(self.proc)
            raise
        self.address = f"127.0.0.1:{self.port}"

    def wait_ready(self, seconds=60):
        """Until a call that needs PostgreSQL succeeds (migrations run after Ping answers)."""
        from runqueue_client import Client, RunQueueError
        deadline = time.time() + seconds
        while True:
            try:
                with Client("127.0.0.1", self.port) as client:
                    client.set_concurrency_limit("env_ready_probe", "", clear=True)
                    return
            except (RunQueueError, OSError):
                if time.time() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.5)

    def close(self):
        stop(self.proc)


def machine_facts(admin_url):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    mem_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    from importlib.metadata import version
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "redis": first(["redis-server", "--version"]).split(" v=")[-1].split()[0],
        "postgres": first(["psql", admin_url, "-Atc", "show server_version"]),
        "rabbitmq": first(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]),
        "erlang": first(["dpkg-query", "-W", "-f=${Version}", "erlang-base"]),
        "bullmq": version("bullmq"), "pika": version("pika"), "python": platform.python_version(),
        "swift": first(["swift", "--version"]),
        "commit": first(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
    }


# MARK: 1. memory

def memory(args):
    ours = json_of(run([os.path.join(RELEASE, "runqueue-bench-memory"), "--runs", str(args.memory_runs), "--json"]))
    bull = peer("bullmq_bench.py", "memory", "--runs", str(args.memory_runs))
    ref = ours["reference_v2_ttl"]
    out(f"## 1. Redis memory per pending run ({args.memory_runs:,} runs, 29-byte ids; baseline: reference layout, V2 JSON, TTL "
        f"= {ref:.0f} B/run)")
    for fmt, value in ours["ours"].items():
        out(f"runqueue {fmt} (TTL set)                      {value:7.1f} B/run  ratio {ratio(value, ref):.3f}")
    out(f"reference layout, V3 value, TTL               {ours['reference_v3_ttl']:7.1f} B/run  ratio {ratio(ours['reference_v3_ttl'], ref):.3f}")
    out(f"reference layout, V2 JSON, no TTL             {ours['reference_v2_no_ttl']:7.1f} B/run  ratio {ratio(ours['reference_v2_no_ttl'], ref):.3f}")
    for label in ("empty", "descriptor"):
        b = bull[label]
        out(f"BullMQ waiting job, data {label:<10} ({b['payload_bytes']:3d} B) {b['bytes_per_job']:7.1f} B/run  ratio "
            f"{ratio(b['bytes_per_job'], ref):.3f}  (no TTL: BullMQ has none for waiting jobs)")
    v4 = ours["ours"].get("v4")
    if v4:
        out(f"runqueue v4 / BullMQ (data empty): ratio {ratio(v4, bull['empty']['bytes_per_job']):.3f}; "
            f"/ BullMQ (descriptor data): {ratio(v4, bull['descriptor']['bytes_per_job']):.3f}")
    return {"ours": ours, "bullmq": bull}


# MARK: 2. cycle

def parse_cycle(text):
    def grab(pattern, cast=float):
        m = re.search(pattern, text)
        if not m:
            raise RuntimeError(f"runqueue-bench-cycle output has no match for {pattern!r}:\n{text}")
        return [cast(g) for g in m.groups()]
    ceiling, cpu_script = grab(r"EVALSHA of a ZADD\+HSET script: (\d+) scripts/s, Redis CPU ([\d.]+) us per script")
    runs, elapsed, rate, enq_s, enq_rate = grab(r"full cycle: (\d+) runs in ([\d.]+) s = (\d+) runs/s \(enqueue side alone finished after ([\d.]+) s = (\d+) runs/s")
    return {"ceiling_scripts_per_s": ceiling, "baseline_cpu_us": cpu_script, "runs": int(runs), "elapsed_s": elapsed,
            "runs_per_s": rate, "enqueue_s": enq_s, "enqueue_runs_per_s": enq_rate,
            "enqueue_batch_ms": dict(zip(("p50", "p99"), grab(r"\nEnqueueBatch\s+([\d.]+)\s+([\d.]+)"))),
            "dequeue_ms": dict(zip(("p50", "p99"), grab(r"\nDequeue\s+([\d.]+)\s+([\d.]+)"))),
            "ack_ms": dict(zip(("p50", "p99"), grab(r"\nAck\s+([\d.]+)\s+([\d.]+)"))),
            "redis_cpu_us_per_run": grab(r"Redis CPU per run: ([\d.]+) us")[0],
            "scripts_per_run": grab(r"Redis scripts per run: ([\d.]+) measured")[0],
            "others_cpu_s": grab(r"other processes \(not Redis, runqueued or this client\) ([\d.]+) s")[0],
            "exactly_once": grab(r"exactly-once check: (\w+)", str)[0]}


def cycle(args, redis_url, database_url):
    env = dict(os.environ, RUNQUEUE_REDIS_URL=redis_url, RUNQUEUE_DATABASE_URL=database_url)
    # The machine is shared: the systems take turns, --cycle-repeats rounds, and each keeps its
    # fastest round (all rounds are listed), so a burst of someone else's load hits no one system alone.
    rounds = {"runqueue": [], "bullmq": [], "rabbitmq": []}
    for _ in range(args.cycle_repeats):
        rounds["runqueue"].append(parse_cycle(run([os.path.join(RELEASE, "runqueue-bench-cycle"), "--runs", str(args.cycle_runs),
                                                       "--rounds", "1", "--skip-redis-only"], env=env)))
        rounds["bullmq"].append(peer("bullmq_bench.py", "cycle", "--runs", str(args.cycle_runs)))
        rounds["rabbitmq"].append(peer("rabbitmq_bench.py", "cycle", "--runs", str(args.cycle_runs)))
    ours, bull, rabbit = (max(rounds[k], key=lambda r: r["runs_per_s"]) for k in ("runqueue", "bullmq", "rabbitmq"))
    n = args.cycle_runs
    out(f"## 2. Full cycle enqueue -> dequeue -> ack, {n:,} runs, batches of 100, 8 batches in flight, fastest of "
        f"{args.cycle_repeats} alternating rounds (baseline: raw Redis ceiling, redis-benchmark -P 16 EVALSHA of a ZADD+HSET script)")
    out("rounds, runs/s: " + "; ".join(f"{k} " + ", ".join(f"{r['runs_per_s']:.0f}" for r in v) for k, v in rounds.items()))
    ceiling = ours["ceiling_scripts_per_s"]
    out(f"baseline raw ceiling: {ceiling:.0f} scripts/s, i.e. runs/s of a queue that needed one ZADD+HSET script per run and "
        f"nothing else (Redis CPU {ours['baseline_cpu_us']:.1f} us per script)")
    out(f"runqueue (PostgreSQL write-through): {ours['runs_per_s']:8.0f} runs/s  ratio to ceiling {ratio(ours['runs_per_s'], ceiling):.3f}; "
        f"EnqueueBatch p50/p99 {ours['enqueue_batch_ms']['p50']:.2f}/{ours['enqueue_batch_ms']['p99']:.2f} ms, "
        f"Dequeue {ours['dequeue_ms']['p50']:.2f}/{ours['dequeue_ms']['p99']:.2f} ms, Ack {ours['ack_ms']['p50']:.2f}/{ours['ack_ms']['p99']:.2f} ms; "
        f"exactly-once {ours['exactly_once']}")
    out(f"runqueue Redis CPU per run {ours['redis_cpu_us_per_run']:.1f} us ({ours['scripts_per_run']:.3f} scripts per run): "
        f"ratio {ratio(ours['redis_cpu_us_per_run'], ours['baseline_cpu_us']):.1f} to the baseline script's CPU")
    out(f"BullMQ (Python worker, concurrency 100): {bull['runs_per_s']:8.0f} runs/s  ratio to ceiling {ratio(bull['runs_per_s'], ceiling):.3f}; "
        f"addBulk(100) p50/p99 {bull['addbulk_ms']['p50']:.2f}/{bull['addbulk_ms']['p99']:.2f} ms; "
        f"add -> completed p50/p99 {bull['run_latency_ms']['p50']:.0f}/{bull['run_latency_ms']['p99']:.0f} ms")
    out(f"RabbitMQ (durable, persistent, confirms, manual acks, prefetch 800): {rabbit['runs_per_s']:8.0f} runs/s  ratio to ceiling "
        f"{ratio(rabbit['runs_per_s'], ceiling):.3f}; publish(100)+confirms p50/p99 "
        f"{rabbit['publish_batch_ms']['p50']:.2f}/{rabbit['publish_batch_ms']['p99']:.2f} ms; publish -> ack p50/p99 "
        f"{rabbit['run_latency_ms']['p50']:.0f}/{rabbit['run_latency_ms']['p99']:.0f} ms")
    out(f"runqueue / BullMQ runs/s: ratio {ratio(ours['runs_per_s'], bull['runs_per_s']):.2f}; runqueue / RabbitMQ: "
        f"{ratio(ours['runs_per_s'], rabbit['runs_per_s']):.2f}; enqueue side alone: runqueue {ours['enqueue_runs_per_s']:.0f}, "
        f"BullMQ {bull['enqueue_runs_per_s']:.0f}, RabbitMQ {rabbit['enqueue_runs_per_s']:.0f} runs/s")
    out(f"other processes on the machine used {ours['others_cpu_s']:.1f} s of CPU during our fastest round")
    return {"ours": ours, "bullmq": bull, "rabbitmq": rabbit, "rounds": rounds}


# MARK: 3. expiry

def our_head_of_line(address, long_ttl):
    """Run A (TTL long_ttl s) then run B (TTL 1 s) in one queue, nobody dequeuing: when is B's expiry event received?"""
    from runqueue_client import Client
    host, port = address.split(":")
    env = f"env_hol_{os.getpid()}"
    base = dict(org_id="org_hol", project_id="proj_hol", environment_id=env, environment_type="PRODUCTION",
                queue="task/hol", task_identifier="hol", worker_queue=f"wq_hol_{os.getpid()}")
    events = {}
    with Client(host, int(port)) as client:
        sub = client.subscribe_expiry(environment_id=env)

        def listen():
            for event in sub:
                events[event.run_id] = (time.time(), event)
                if event.run_id == "run_hol_b":
                    return
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        t0 = time.time()
        client.enqueue(run_id="run_hol_a", ttl=f"{long_ttl}s", **base)
        client.enqueue(run_id="run_hol_b", ttl="1s", **base)
        time.sleep(max(0.0, t0 + 1.5 - time.time()))
        length = client.queue_stats(env, "task/hol").length
        listener.join(long_ttl + 15)
        sub.close()
    got = events.get("run_hol_b")
    return {"long_ttl_s": long_ttl, "short_ttl_s": 1, "b_expired_after_s": round(got[0] - t0, 2) if got else None,
            "b_lateness_ms": round(got[0] * 1000 - got[1].expires_at_ms, 1) if got else None,
            "queue_count_at_1_5_s": length, "announced": "SubscribeExpiry event (durable expiry log, resumable cursor)"}


def our_drain(runs):
    """runqueue-bench-expiry (its own redis-server, database and runqueued): `runs` runs expiring at
    one instant; its lateness part is kept small, the figures used here are the drain's."""
    text = run([os.path.join(RELEASE, "runqueue-bench-expiry"), "--lateness-runs", "2000", "--spread", "2",
                "--drain-runs", str(runs), "--skip-baseline"])
    drain = text[text.index("\ndrain: "):]
    delivered = re.search(r"all events delivered to the subscriber after ([\d.]+) s: (\d+) runs/s", drain)
    stored = re.search(r"EXPIRED in PostgreSQL after ([\d.]+) s: (\d+) runs/s", drain)
    once = re.search(r"exactly-once: ([^;\n]+)", drain)
    if not (delivered and once):
        raise RuntimeError(f"runqueue-bench-expiry output without the drain figures:\n{text}")
    return {"runs": runs, "delivered_s": float(delivered.group(1)), "delivered_per_s": float(delivered.group(2)),
            "expired_in_postgres_s": float(stored.group(1)) if stored else None,
            "expired_in_postgres_per_s": float(stored.group(2)) if stored else None, "exactly_once": once.group(1)}


def expiry(args, address):
    load = json.loads(run([os.path.join(RELEASE, "runqueue-load"), "expiry", "--server", address, "--count", str(args.expiry_runs),
                           "--batch-size", "1000", "--connections", "2", "--window", "4", "--environments", "1", "--ttl", "2s",
                           "--drain-timeout", "60s", "--json", "--quiet"]))
    lateness = load["measures"]["expiry_lateness"]["latency_ms"]
    runs = load["runs"]
    ours = {"runs": runs["expiring"], "events": runs["events"], "missing": runs["missing_events"], "produce_s": load["produce_s"],
            "lateness_ms": {"p50": lateness["p50"], "p99": lateness["p99"], "max": lateness["max"]}}
    ours["head_of_line"] = our_head_of_line(address, args.long_ttl)
    ours["drain"] = our_drain(args.expiry_runs)
    rabbit = peer("rabbitmq_bench.py", "expiry", "--runs", str(args.expiry_runs), "--long-ttl", str(args.long_ttl))
    rd, od = rabbit["drain"], ours["drain"]
    out(f"## 3. Expiry, {args.expiry_runs:,} runs expiring together, no consumer (baseline: RabbitMQ per-message TTL, "
        f"dead-lettered to a DLX queue a consumer reads)")
    out(f"RabbitMQ lateness p50/p99 {rd['lateness_ms']['p50']:.0f}/{rd['lateness_ms']['p99']:.0f} ms (one shared deadline)")
    out(f"runqueue lateness p50/p99 {ours['lateness_ms']['p50']:.0f}/{ours['lateness_ms']['p99']:.0f} ms "
        f"(ratio {ratio(ours['lateness_ms']['p50'], rd['lateness_ms']['p50']):.2f}/{ratio(ours['lateness_ms']['p99'], rd['lateness_ms']['p99']):.2f}; "
        f"runqueue-load expiry, ttl 2s, deadlines spread over the {ours['produce_s']:.2f} s of enqueueing; {ours['events']} events, {ours['missing']} missing)")
    out(f"drain, {args.expiry_runs:,} expiring at one instant: RabbitMQ all dead-lettered and received {rd['drain_s']:.2f} s after it = "
        f"{rd['drain_per_s']:.0f}/s; runqueue all events received after {od['delivered_s']:.2f} s = {od['delivered_per_s']:.0f}/s "
        f"(ratio {ratio(od['delivered_per_s'], rd['drain_per_s']):.2f}; runqueue-bench-expiry; all EXPIRED in PostgreSQL after "
        f"{od['expired_in_postgres_s']} s; exactly-once {od['exactly_once']})")
    rh, oh = rabbit["head_of_line"], ours["head_of_line"]
    out(f"head of line, 1 s TTL behind a {args.long_ttl} s TTL, no consumer: RabbitMQ dead-letters it after "
        f"{rh['b_dead_lettered_after_s']} s (queue still counts {rh['queue_count_at_1_5_s']} at 1.5 s; announced: {rh['announced']}); "
        f"runqueue expires it after {oh['b_expired_after_s']} s (ratio {ratio(oh['b_expired_after_s'] or 0, rh['b_dead_lettered_after_s'] or 0):.3f}; "
        f"queue counts {oh['queue_count_at_1_5_s']} at 1.5 s; announced: {oh['announced']})")
    return {"ours": ours, "rabbitmq": rabbit}


# MARK: 4. scale

def scale(args, address):
    data = json_of(run([os.path.join(RELEASE, "runqueue-bench-scale"), "--server", address, "--levels", args.scale_levels, "--json"]))
    levels = data["levels"]
    base = levels[0]
    out(f"## 4. Enqueue / Dequeue / Ack cost by backlog, one queue, {data['samples']} calls each, one at a time "
        f"(baseline: backlog {base['backlog']:,})")
    for level in levels:
        out(f"backlog {level['backlog']:>9,}: Enqueue p50/p99 {level['enqueue']['p50_ms']:.3f}/{level['enqueue']['p99_ms']:.3f} ms, "
            f"Dequeue {level['dequeue']['p50_ms']:.3f}/{level['dequeue']['p99_ms']:.3f} ms, Ack {level['ack']['p50_ms']:.3f}/{level['ack']['p99_ms']:.3f} ms "
            f"(loaded in {level['preload_s']:.1f} s)")
    for level in levels[1:]:
        r = {k: (ratio(level[k]["p50_ms"], base[k]["p50_ms"]), ratio(level[k]["p99_ms"], base[k]["p99_ms"])) for k in ("enqueue", "dequeue", "ack")}
        out(f"backlog {level['backlog']:,} / {base['backlog']:,}: Enqueue ratio p50 {r['enqueue'][0]:.2f} p99 {r['enqueue'][1]:.2f}; "
            f"Dequeue p50 {r['dequeue'][0]:.2f} p99 {r['dequeue'][1]:.2f}; Ack p50 {r['ack'][0]:.2f} p99 {r['ack'][1]:.2f}")
    return data


def write_results(path, facts, args, started, results):
    minutes = (time.time() - started) / 60
    with open(path, "w") as f:
        f.write("# Benchmark results: runqueue side by side (generated)\n\n")
        f.write(f"Generated by `make bench-compare` (bench/compare.py) on {facts['date']}, in {minutes:.1f} minutes; "
                "every figure was measured in this run next to its baseline, and ratios are ours (or the peer's) / the baseline. "
                "Rerun the command to replace this file.\n\n")
        f.write("## Machine\n\n")
        f.write(f"- {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB RAM, Linux {facts['kernel']}\n")
        f.write(f"- Redis {facts['redis']}, PostgreSQL {facts['postgres']}, RabbitMQ {facts['rabbitmq']} (Erlang {facts['erlang']}), "
                f"bullmq {facts['bullmq']} and pika {facts['pika']} on Python {facts['python']}\n")
        f.write(f"- {facts['swift']}; runqueue commit {facts['commit']}, release build\n")
        f.write("- Throughput moves between runs on these 2 cores (by about 10% with nothing else running, by 2x when other "
                "work shares them: the cycle line says how much CPU other processes used); the ratios within one run are "
                "the figures to read.\n\n")
        f.write("## Set-up\n\n")
        f.write(f"- Ours: runqueued against a private redis-server (no persistence) and a fresh PostgreSQL database (created and dropped "
                f"by the script; the local server runs with fsync off). BullMQ: a private redis-server per run. RabbitMQ: a private node "
                f"(classic queues, durable, persistent messages).\n")
        f.write(f"- Cycle: {args.cycle_runs:,} runs for every system (reduced from the 200,000 of `make bench-cycle` to fit the time "
                f"budget), the systems taking turns for {args.cycle_repeats} rounds and each keeping its fastest; batches of 100 with 8 in flight; the same descriptor payload (org, project, environment, type, queue, "
                f"task, worker queue; about 260 bytes as JSON) per run; 29-byte run ids.\n")
        f.write(f"- Expiry: {args.expiry_runs:,} runs / messages, nobody consuming. RabbitMQ gets one shared absolute deadline "
                f"(each message's expiration is the time left to it). Our lateness comes from runqueue-load's expiry scenario "
                f"(TTL 2 s after each enqueue, so its deadlines spread over the enqueue phase); our drain from runqueue-bench-expiry "
                f"(all runs due at one instant, like RabbitMQ's). Lateness = received - deadline; drain = N / (last event received - "
                f"the deadline).\n")
        f.write("- Scale: one queue, runs with a 1 h TTL, backlog loaded with EnqueueBatch of 1,000; each call timed alone "
                "(one in flight).\n\n")
        f.write("## Figures\n\n```\n")
        f.write("\n".join(lines))
        f.write("\n```\n\n## Raw results (JSON)\n\n```json\n")
        f.write(json.dumps(results, indent=1, default=str))
        f.write("\n```\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycle-runs", type=int, default=50_000)
    parser.add_argument("--cycle-repeats", type=int, default=2)
    parser.add_argument("--memory-runs", type=int, default=100_000)
    parser.add_argument("--expiry-runs", type=int, default=20_000)
    parser.add_argument("--scale-levels", default="10000,1000000")
    parser.add_argument("--long-ttl", type=int, default=20)
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    args = parser.parse_args()
    started = time.time()
    ensure_installed()
    admin_url = os.environ.get("RUNQUEUE_DATABASE_URL") or "postgres://postgres@127.0.0.1:5491/postgres"
    facts = machine_facts(admin_url)
    out(f"runqueue side by side, {facts['date']}: {facts['cpus']} CPUs, {facts['memory_gib']} GiB, Redis {facts['redis']}, "
        f"PostgreSQL {facts['postgres']}, RabbitMQ {facts['rabbitmq']}, bullmq {facts['bullmq']}")
    results = {"machine": facts}
    results["memory"] = memory(args)
    redis = PrivateRedis()
    database = None
    server = None
    try:
        database = Database(admin_url)
        results["cycle"] = cycle(args, redis.url, database.url)
        server = Server(redis.url, database.url)
        results["expiry"] = expiry(args, server.address)
        results["scale"] = scale(args, server.address)
    finally:
        if server:
            server.close()
        redis.close()
        if database:
            database.close()
    write_results(args.results, facts, args, started, results)
    print(f"wrote {os.path.relpath(args.results, ROOT)} ({(time.time() - started) / 60:.1f} minutes)", flush=True)


if __name__ == "__main__":
    main()
