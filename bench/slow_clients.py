"""Slow-client figures for `connector serve`: is the receiver still answering while N
connections trickle their requests a byte a second?

For each HTTP stack (`--stacks waitress,gunicorn`: the current one and the former gunicorn
`gthread` 1 × 8 threads, selected with CONNECTOR_HTTP_SERVER) a real `connector serve
--no-worker` runs as a subprocess (SQLite queue in a temporary directory). From this separate
process, for N in `--counts` (default 0, 50, 200) and both modes – a body trickling (headers
complete, `Content-Length: 100000`, one body byte a second) and headers trickling – N raw
sockets are opened (and re-opened when the server drops them, as an attacker would), then
`--samples` probes each of GET /healthz and a signed Jira webhook are timed on fresh
connections with a `--timeout` second limit. Also: how long a request that claims 1 MiB and
sends 10 bytes stays open. Prints figures, asserts nothing.

Run: .venv/bin/python bench/slow_clients.py [--stacks waitress,gunicorn] [--counts 0,50,200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import connector_env, intake_config, jira_headers, receiver, wait_ready  # noqa: E402
from tests.slow_clients import SlowClients, lying_request, wait_closed  # noqa: E402


def probe(url: str, kind: str, n: int, timeout: float) -> float | None:
    """Seconds until the answer (a fresh connection each time, as a probe or Jira opens), None if none came."""
    started = time.perf_counter()
    try:
        if kind == "healthz":
            status = requests.get(url + "/healthz", timeout=timeout).status_code
            ok = status == 200
        else:
            body = (b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic", '
                    b'"user": {"accountId": "acc-agent"}, "issue": {"id": "%d", "key": "SUP-%d"}}' % (900000 + n, n))
            status = requests.post(url + "/webhooks/jira", data=body, headers=jira_headers(body, f"slow-bench-{n}"),
                                   timeout=timeout).status_code
            ok = status == 202
    except requests.RequestException:
        return None
    return time.perf_counter() - started if ok else None


def figures(latencies: list[float | None], timeout: float) -> str:
    answered = sorted(x for x in latencies if x is not None)
    if not answered:
        return f"0/{len(latencies)} answered within {timeout:.0f} s"
    return (f"{len(answered)}/{len(latencies)} answered; p50 {statistics.median(answered) * 1000:.0f} ms, "
            f"max {answered[-1] * 1000:.0f} ms")


def run_stack(stack: str, counts: list[int], modes: list[str], samples: int, timeout: float, hold: float,
              tmp: Path) -> None:
    env = connector_env(tmp / f"data-{stack}", intake_config(tmp / "rules.yaml"), CONNECTOR_HTTP_SERVER=stack,
                        CONNECTOR_LOG_LEVEL="WARNING")
    process, url = receiver(f"receiver-{stack}", env, tmp)
    port = int(url.rsplit(":", 1)[1])
    sequence = 0
    try:
        wait_ready(url, process)
        print(f"[{stack}]")
        for mode in modes:
            for count in counts:
                if count == 0 and mode != modes[0]:
                    continue
                clients = SlowClients("127.0.0.1", port, count, mode=mode).start()
                try:
                    time.sleep(hold)  # the connections are in the middle of their requests
                    open_now = clients.open_count()
                    results: dict[str, list[float | None]] = {"healthz": [], "webhook": []}
                    for _ in range(samples):
                        for kind in results:
                            sequence += 1
                            results[kind].append(probe(url, kind, sequence, timeout))
                        time.sleep(0.2)
                    label = "no slow connections" if count == 0 else f"{count} slow connections ({mode} trickling)"
                    print(f"  {label}, {open_now} open at the start, {clients.dropped} dropped by the server "
                          f"and re-opened during the probes")
                    print(f"    /healthz:            {figures(results['healthz'], timeout)}")
                    print(f"    signed Jira webhook: {figures(results['webhook'], timeout)}")
                finally:
                    clients.stop()
                wait_ready(url, process, timeout=120)  # let the old stack recover before the next round
        sock = lying_request("127.0.0.1", port)
        closed_after = wait_closed(sock, 60)
        sock.close()
        print("  a request claiming 1 MiB that sends 10 bytes: "
              + (f"connection closed by the server after {closed_after:.1f} s" if closed_after is not None
                 else "still open after 60 s"))
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="gunicorn,waitress")
    parser.add_argument("--counts", default="0,50,200")
    parser.add_argument("--modes", default="body,headers")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds a probe waits for its answer")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the slow connections trickle before probing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        for stack in args.stacks.split(","):
            run_stack(stack, [int(c) for c in args.counts.split(",")], args.modes.split(","), args.samples,
                      args.timeout, args.hold, Path(tmp_name))


if __name__ == "__main__":
    main()
