"""The README's Python client examples run as written (names made unique,
the address pointed at the test server)."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT
from runqueue_client import Client

PACKAGE = Path(__file__).resolve().parents[1]


def readme_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("### Python client", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def localise(code, server, ids):
    replacements = {"127.0.0.1:7420": f"{server[0]}:{server[1]}", "my-worker-queue": ids.worker_queue,
                    "env_1": ids.env, "org_1": f"{ids.prefix}-org", "proj_1": f"{ids.prefix}-proj",
                    '"run_': f'"{ids.prefix}-run_', "task/email": ids.queue}
    for old, new in replacements.items():
        code = code.replace(old, new)
    return code


def run_python(code, stdout=subprocess.PIPE):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)


def test_readme_producer_then_worker_loop(server, ids, tmp_path):
    worker_code, producer_code = readme_blocks()
    producer = run_python(localise(producer_code, server, ids))
    out, err = producer.communicate(timeout=30)
    assert producer.returncode == 0, err
    assert "INVALID_ARGUMENT" in out and "ttl" in out
    total = 2001
    with Client(*server) as c:
        assert c.queue_stats(ids.env, ids.queue).length == total
        log = open(tmp_path / "worker.out", "w")  # a file, not a pipe nobody reads while it runs
        worker = run_python(localise(worker_code, server, ids), stdout=log)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                stats = c.queue_stats(ids.env)
                if stats.length == 0 and stats.in_flight == 0:
                    break
                time.sleep(0.05)
            assert (stats.length, stats.in_flight) == (0, 0)
        finally:
            worker.terminate()
            _, err = worker.communicate(timeout=10)
            log.close()
    out = (tmp_path / "worker.out").read_text()
    ran = [line.split()[2] for line in out.splitlines() if line.startswith("running")]
    assert len(ran) == total and len(set(ran)) == total
