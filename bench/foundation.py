#!/usr/bin/env python3
"""Foundation benchmarks: token issue latency, flavor list latency, idle
memory of web server + worker, both on the real stack (PostgreSQL, Redis,
separate worker process) and in the embedded mode (SQLite, worker thread).

    .venv/bin/python bench/foundation.py

Prints a Markdown table; results are recorded in bench/RESULTS.md.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.localservers import PostgreSQL, Redis, free_port, stop, wait_for_port  # noqa: E402
from tests.live import LiveCloud  # noqa: E402

N = 200


def rss_mb(pid):
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [str(pid)] + subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def auth_body(user, password, project):
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}


def timed(fn, n=N):
    fn()  # warm up connections and caches
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def measure(url, password):
    session = requests.Session()
    body = auth_body("demo", password, "demo")

    def issue():
        response = session.post(f"{url}/identity/v3/auth/tokens", json=body)
        assert response.status_code == 201, response.text

    token_median, token_p95 = timed(issue)
    token = session.post(f"{url}/identity/v3/auth/tokens", json=body).headers["X-Subject-Token"]

    def flavors():
        response = session.get(f"{url}/compute/v2.1/flavors/detail", headers={"X-Auth-Token": token})
        assert response.status_code == 200

    flavor_median, flavor_p95 = timed(flavors)
    return {"token_median": token_median, "token_p95": token_p95, "flavor_median": flavor_median,
            "flavor_p95": flavor_p95}


def real_stack(folder):
    pg = PostgreSQL(folder / "pg").start()
    redis = Redis(folder / "redis").start()
    os.environ["DC_TEST_POSTGRES_ADMIN_URL"] = pg.url("postgres")
    os.environ["REDIS_URL"] = redis.url()
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)
    cloud = LiveCloud(folder / "cloud")
    (folder / "cloud").mkdir()
    try:
        cloud.start()
        result = measure(cloud.url, "demo-live-pass")
        time.sleep(2)
        result["rss_web_mb"] = rss_mb(cloud.procs[0].pid)
        result["rss_worker_mb"] = rss_mb(cloud.procs[1].pid)
        return result
    finally:
        cloud.stop()
        redis.stop()
        pg.stop()


def embedded(folder):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DC_VAR_DIR": str(folder / "embedded"), "DEBUG": "1", "DEMO_PASSWORD": "demo"})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port),
                             "--lifespan", "on", "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        result = {"startup_s": time.perf_counter() - started}
        result.update(measure(f"http://127.0.0.1:{port}", "demo"))
        time.sleep(2)
        result["rss_total_mb"] = rss_mb(proc.pid)
        return result
    finally:
        stop(proc)


def main():
    with tempfile.TemporaryDirectory(prefix="dc-bench-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        results = {"real": real_stack(folder), "embedded": embedded(folder)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
