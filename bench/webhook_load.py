"""Webhook acknowledgement latency and accepted events/s for `connector serve --no-worker`.

Starts the real receiver (waitress, SQLite queue in a temporary data dir) as a subprocess,
then fires signed Jira webhooks from a separate load-generating process with several
keep-alive connections. Prints median/p99 latency and throughput; asserts nothing.
Run: .venv/bin/python bench/webhook_load.py [EVENTS] [CONNECTIONS]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed_events(n: int) -> list[tuple[bytes, dict[str, str]]]:
    template = json.loads((ROOT / "tests" / "fixtures" / "jira" / "issue_updated__status.json").read_text())
    events = []
    for i in range(n):
        template["issue"]["id"] = str(100000 + i)
        template["issue"]["key"] = f"SUP-{i}"
        body = json.dumps(template).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        events.append((body, {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={signature}",
                              "X-Atlassian-Webhook-Identifier": f"bench-{i}"}))
    return events


def load(url: str, n: int, connections: int, out) -> None:
    """The load generator: runs in its own process so it does not share the receiver's CPU accounting."""
    events = signed_events(n)
    sessions = [requests.Session() for _ in range(connections)]

    def send(i: int) -> tuple[float, int]:
        body, headers = events[i]
        started = time.perf_counter()
        status = sessions[i % connections].post(url, data=body, headers=headers, timeout=10).status_code
        return time.perf_counter() - started, status

    for i in range(min(50, n)):  # warm-up, not measured
        sessions[0].post(url.replace("/webhooks/jira", "/healthz").replace("post", "get"), timeout=10)
    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(send, range(n)))
    out.put((time.perf_counter() - started, results))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "JIRA_WEBHOOK_SECRET": SECRET, "CONNECTOR_DATA_DIR": data_dir}
        server = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--no-worker", "--port", str(port)],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            out = multiprocessing.get_context("spawn").Queue()
            generator = multiprocessing.get_context("spawn").Process(
                target=load, args=(f"http://127.0.0.1:{port}/webhooks/jira", n, connections, out))
            generator.start()
            elapsed, results = out.get(timeout=600)
            generator.join()
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies = sorted(r[0] * 1000 for r in results)
    accepted = sum(1 for _, status in results if status in (200, 202))
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"webhook receiver (waitress, SQLite queue), {n} signed Jira events, {connections} connections")
    print(f"  accepted {accepted}/{n}; {accepted / elapsed:,.0f} events/s")
    print(f"  acknowledgement latency: median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
          f"max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    main()
