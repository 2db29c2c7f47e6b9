import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runqueue_client import Client, RunQueueError  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MAX_ATTEMPTS = 3  # the server's RUNQUEUE_MAX_ATTEMPTS here, so dead-lettering takes three failures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_ready(proc: subprocess.Popen, port: int, deadline: float) -> None:
    """Until the engine answers: the server answers UNAVAILABLE for a moment
    after it starts, while it connects to Redis and PostgreSQL and migrates;
    GetRun of a run that does not exist answers NOT_FOUND once both are up."""
    last = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runqueued exited with {proc.returncode} during start-up")
        try:
            with Client("127.0.0.1", port, timeout=2) as c:
                c.get_run("readiness-probe")
                return
        except RunQueueError as error:
            if error.name == "NOT_FOUND":
                return
            last = error
            time.sleep(0.05)
        except OSError as error:
            last = error
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"runqueued did not become ready: {last}")


@pytest.fixture(scope="session")
def server():
    """A real runqueued (the debug build) on a free port, with the local Redis and PostgreSQL."""
    binary = Path(os.environ.get("RUNQUEUED_BIN", ROOT / ".build" / "debug" / "runqueued"))
    port = _free_port()
    env = dict(os.environ, RUNQUEUE_LISTEN=f"127.0.0.1:{port}", RUNQUEUE_MAX_FRAME_BYTES="65536",
               RUNQUEUE_LOG_LEVEL="warning", RUNQUEUE_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    proc = subprocess.Popen([str(binary)], env=env)
    try:
        _wait_until_ready(proc, port, time.time() + 20)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        raise
    yield ("127.0.0.1", port)
    proc.terminate()
    assert proc.wait(timeout=15) == 0


@pytest.fixture
def client(server):
    with Client(*server) as c:
        yield c


@pytest.fixture
def ids():
    """Unique names for one test (the Redis is shared with other tests and runs)."""
    return Ids()


class Ids:
    def __init__(self):
        self.prefix = "py-" + uuid.uuid4().hex[:12]
        self.env = f"{self.prefix}-env"
        self.worker_queue = f"{self.prefix}-wq"
        self.queue = f"{self.prefix}/queue"

    def run(self, n) -> str:
        return f"{self.prefix}-run-{n}"

    def descriptor(self, n, **overrides) -> dict:
        d = dict(run_id=self.run(n), org_id=f"{self.prefix}-org", project_id=f"{self.prefix}-proj",
                 environment_id=self.env, environment_type="PRODUCTION", queue=self.queue,
                 task_identifier="py-task", worker_queue=self.worker_queue)
        d.update(overrides)
        return d
