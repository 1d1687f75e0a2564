"""The baseline receiver of `bench/load.py`: the least a webhook receiver must do, nothing else.

Flask under the same HTTP server as `connector serve` (`connector.http_server.create_server`,
waitress, one process × 8 threads), the same `X-Hub-Signature` HMAC check, and one INSERT of
the body into SQLite in WAL mode (SQLite's default `synchronous`, FULL: one fsync per
commit, as the connector's own queue file). No delivery dedupe, no burst collapse, no
metrics, no per-event log line: the connector's acknowledgement is measured against it.

Also `--noop`: a canned 202 from a bare asyncio server, to measure the load generator's own
ceiling (the generator is then the only thing that can be slow).

Run: python bench/baseline_receiver.py --port 8000 --db /tmp/baseline.db [--noop]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import signal
import sqlite3
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = b"fault-test-webhook-secret"  # tests.processes.WEBHOOK_SECRET


def create_app(db_path: str):
    from flask import Flask, request

    app = Flask("baseline")
    local = threading.local()
    setup = sqlite3.connect(db_path)
    setup.execute("pragma journal_mode=wal")
    setup.execute("create table if not exists event (id integer primary key, body blob not null)")
    setup.close()

    def connection() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(db_path, timeout=5, isolation_level=None)
        return conn

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/webhooks/jira")
    def jira():
        body = request.get_data()
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature", "")):
            return {"error": "bad signature"}, 401
        connection().execute("insert into event (body) values (?)", (body,))
        return {"status": "queued"}, 202

    return app


def run_noop(port: int) -> None:
    import asyncio

    response = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n"
                b'{"status":"queued"}')

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(response)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--noop", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.noop:
        run_noop(args.port)
        return
    from connector.http_server import create_server
    from webhooks.app import MAX_BODY_BYTES

    server = create_server(create_app(args.db), "127.0.0.1", args.port, max_body_bytes=MAX_BODY_BYTES,
                           threads=args.threads)
    server.run()


if __name__ == "__main__":
    main()
