"""Process helpers shared by the comparison scripts: free ports, a private
redis-server and a private RabbitMQ node, each started as a child process and
stopped by its pid, with their data in a temporary folder that is removed."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def say(line=""):
    """One line on stderr at once: stdout carries the scripts' JSON."""
    print(line, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds, proc=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def stop(proc, grace=20):
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps the child."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateRedis:
    """redis-server on a free loopback port, no persistence, data in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="runqueue-bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 10, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}"

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True, capture_output=True, text=True).stdout

    def info(self, section):
        out = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def used_memory(self):
        return int(self.info("memory")["used_memory"])

    def settled_memory(self):
        """used_memory once Redis is idle: two equal readings 250 ms apart."""
        time.sleep(1.5)
        last = self.used_memory()
        for _ in range(20):
            time.sleep(0.25)
            now = self.used_memory()
            if now == last:
                return now
            last = now
        return last

    def close(self):
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRabbit:
    """A RabbitMQ node of its own: own node name, AMQP / distribution / epmd
    ports, config, data and logs under a temp dir; epmd and the server are
    children of this process, stopped by pid."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="runqueue-bench-rabbit-")
        self.port = free_port()
        epmd_port = free_port()
        name = f"rqbench{os.getpid()}@localhost"
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        env = dict(os.environ,
                   HOME=self.dir,  # the Erlang cookie goes here
                   ERL_EPMD_PORT=str(epmd_port),
                   RABBITMQ_NODENAME=name,
                   RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(free_port()),
                   RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
                   RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.dir, "advanced"),
                   RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "rabbitmq-env.conf"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
                   RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
                   RABBITMQ_PID_FILE=os.path.join(self.dir, "rabbit.pid"))
        self.epmd = subprocess.Popen(["epmd", "-port", str(epmd_port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.log = open(os.path.join(self.dir, "server.out"), "w")
        self.proc = subprocess.Popen([self.SERVER], env=env, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, 90, self.proc)
        except Exception:
            self.close()
            raise
        self.version = self._version()

    def _version(self):
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True).stdout
            return out.strip() or "?"
        except OSError:
            return "?"

    def close(self):
        stop(self.proc, grace=60)
        stop(self.epmd)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def percentile(values, q):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]
