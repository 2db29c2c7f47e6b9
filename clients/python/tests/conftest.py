import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """A real runqueued (the debug build) on a free port, with the local Redis and PostgreSQL."""
    binary = Path(os.environ.get("RUNQUEUED_BIN", ROOT / ".build" / "debug" / "runqueued"))
    port = _free_port()
    env = dict(os.environ, RUNQUEUE_LISTEN=f"127.0.0.1:{port}", RUNQUEUE_MAX_FRAME_BYTES="65536",
               RUNQUEUE_LOG_LEVEL="warning")
    proc = subprocess.Popen([str(binary)], env=env)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("runqueued did not start")
    yield ("127.0.0.1", port)
    proc.terminate()
    assert proc.wait(timeout=15) == 0
