"""Wake idle SQLite-queue workers the moment a task is stored, instead of letting them poll.

huey's consumer polls a SQLite queue and backs its polling off (×1.15 per empty poll, up
to 10 s by default), so a worker that had nothing to do for a minute picked up the next
reconcile up to 10 s late. Polling fast instead costs CPU all day for an event that comes a
few times a minute. SQLite is a single-host queue (huey opens it in WAL mode, and "all
processes using a database must be on the same host computer; WAL does not work over a
network filesystem", https://www.sqlite.org/wal.html), so every process that stores a task
runs on the worker's host and can tell it directly.

How: each worker process owns a FIFO (named pipe) in a directory next to the queue file
(`queue.db.wakeup/`). Whoever stores a task (the receiver, the scheduler, the sweep) writes
one byte into every FIFO there after the commit; a thread in the worker sleeps in
`select()` on its FIFO and, when woken, bumps a generation counter that the worker threads
wait on. An idle worker therefore costs no CPU between events apart from a fallback poll
once a second, which bounds the delay if a wake-up is ever lost (a producer that cannot
open the FIFO, a task inserted by other means).

Why a FIFO: it lives in the file system, so it works wherever the queue file is shared
(containers with one volume), and unlike a UNIX socket its path has no 108-byte limit.
The worker opens it read-write (fifo(7): "Under Linux, opening a FIFO for read and write
will succeed both in blocking and nonblocking mode", https://manned.org/fifo.7) so that it
never sees end-of-file when a producer closes its end; a producer opens it write-only and
non-blocking, which "fails with ENXIO … unless the other end has already been opened"
(same page) – the mark of a dead worker's FIFO, which the producer then removes. A full
FIFO (EAGAIN) already holds a pending wake-up.

Race freedom: a worker thread reads the generation before it looks at the queue and
waits only while the generation is unchanged; a producer writes its byte only after its
transaction committed, and the listener bumps the generation only after draining the
byte. So a task committed after the thread's look wakes it, and one committed before the
look is seen by it.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import threading
import uuid
from pathlib import Path

from huey.storage import SqliteStorage

log = logging.getLogger(__name__)

WAKEUP_SUFFIX = ".wakeup"
FIFO_SUFFIX = ".fifo"
FALLBACK_POLL_SECONDS = 1.0  # the delay bound when a wake-up is lost; one cheap SELECT per thread

_warned: set[int] = set()  # errnos already logged by this process: one line each, not one per event


def wakeup_dir(queue_file: str | os.PathLike) -> Path:
    """The directory of worker FIFOs that belongs to one SQLite queue file."""
    return Path(f"{os.fspath(queue_file)}{WAKEUP_SUFFIX}")


def notify_workers(directory: Path) -> int:
    """Write one wake-up byte into every live worker FIFO in `directory`; return how many.

    Never raises: the task is already stored, and a worker that is not woken still finds it
    on its fallback poll. Called in the request path, so it is a few syscalls per worker.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0  # no worker has ever listened on this queue
    except OSError as exc:
        _warn_once(exc, directory)
        return 0
    woken = 0
    for name in names:
        if not name.endswith(FIFO_SUFFIX):
            continue
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no reader: its worker is gone
                _remove_dead(path)
            elif exc.errno != errno.ENOENT:  # ENOENT: removed by its worker meanwhile
                _warn_once(exc, directory)
            continue
        try:
            os.write(fd, b"\x01")
            woken += 1
        except BlockingIOError:
            woken += 1  # the FIFO is full of wake-ups the worker has not drained yet
        except OSError as exc:
            if exc.errno != errno.EPIPE:  # the worker closed it between open and write
                _warn_once(exc, directory)
        finally:
            os.close(fd)
    return woken


def _remove_dead(path: Path) -> None:
    try:
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            path.unlink()
            log.info("queue.wakeup_fifo_removed", extra={"fifo": path.name})
    except FileNotFoundError:
        return  # another producer removed it first
    except OSError as exc:
        log.warning("queue.wakeup_fifo_not_removed", extra={"fifo": path.name, "error": type(exc).__name__})


def _warn_once(exc: OSError, directory: Path) -> None:
    if exc.errno in _warned:
        return
    _warned.add(exc.errno)
    log.warning("queue.wakeup_failed", extra={
        "error": errno.errorcode.get(exc.errno, str(exc.errno)), "directory": str(directory),
        "hint": "workers still pick tasks up on their fallback poll; let the receiver and the "
                "worker run as the same user so the receiver can write to the worker's FIFO",
    })


class WakeupListener:
    """A worker process's FIFO and the thread that turns its bytes into a generation bump."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path: Path | None = None
        self._fd: int | None = None
        self._stop_r: int | None = None
        self._stop_w: int | None = None
        self._cond = threading.Condition()
        self._generation = 0
        self._released = False
        self._thread: threading.Thread | None = None
        self.wakeups = 0  # bytes drained; what the tests look at

    def start(self) -> "WakeupListener":
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        temporary = self.directory / f"{stem}.new"
        os.mkfifo(temporary, 0o600)
        try:
            self._fd = os.open(temporary, os.O_RDWR | os.O_NONBLOCK)
            # Renamed only once it has a reader, so a producer that meets ENXIO on a
            # *.fifo knows its worker is gone and may remove it.
            self.path = self.directory / f"{stem}{FIFO_SUFFIX}"
            os.rename(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="connector-wakeup", daemon=True)
        self._thread.start()
        log.info("queue.wakeup_listening", extra={"fifo": self.path.name})
        return self

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def wait(self, seen: int, timeout: float) -> bool:
        """Block until a wake-up newer than `seen` (True), a release, or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._generation != seen or self._released, timeout) \
                and self._generation != seen

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Let every waiting thread return now (the consumer is stopping)."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def _run(self) -> None:
        assert self._fd is not None and self._stop_r is not None
        poller = select.poll()  # not select(): no FD_SETSIZE limit in a process with many files
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            drained = 0
            try:
                while chunk := os.read(self._fd, 4096):
                    drained += len(chunk)
            except BlockingIOError:
                pass
            if drained:
                with self._cond:
                    self._generation += 1
                    self.wakeups += drained
                    self._cond.notify_all()

    def stop(self) -> None:
        self.release()
        if self._stop_w is not None:
            os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd is not None:
                os.close(fd)
        self._fd = self._stop_r = self._stop_w = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class WakeupSqliteStorage(SqliteStorage):
    """huey's SQLite storage that wakes the workers after storing a task, and lets a worker
    wait for that wake-up instead of polling (huey's consumer does not sleep between empty
    dequeues of a storage whose `blocking` is true; huey/consumer.py `Worker.loop`)."""

    def __init__(self, *args, fallback_poll: float = FALLBACK_POLL_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        self.wakeup_dir = wakeup_dir(self.filename)
        self.read_timeout = fallback_poll
        self.listener: WakeupListener | None = None

    @property
    def blocking(self) -> bool:  # type: ignore[override]
        # Only a worker with a listener waits in dequeue(); without one huey's own sleep
        # between polls applies (and a released listener must not turn dequeue into a spin).
        return self.listener is not None and not self.listener.released

    def attach(self, listener: WakeupListener, *, fallback_poll: float | None = None) -> None:
        """Make dequeue() wait for `listener`'s wake-ups, at most `fallback_poll` seconds."""
        if fallback_poll is not None:
            self.read_timeout = fallback_poll
        self.listener = listener

    def detach(self) -> None:
        self.listener = None

    def enqueue(self, data, priority=None):
        super().enqueue(data, priority)
        self.notify()

    def notify(self) -> int:
        """Wake the workers of this queue; for code that stores a task without `enqueue`."""
        return notify_workers(self.wakeup_dir)

    def dequeue(self):
        listener = self.listener
        if listener is None:
            return super().dequeue()
        seen = listener.generation
        data = super().dequeue()
        if data is not None:
            return data
        if listener.wait(seen, self.read_timeout):
            return super().dequeue()
        # Timed out: huey calls dequeue() again at once, and its first look is the fallback
        # poll – one SELECT per thread per read_timeout while idle, not two.
        return None


def wake_workers(huey) -> int:
    """Wake the idle workers of a SQLite queue now; for code that stores a task without
    huey's `enqueue` (which does this by itself). Redis wakes its blocked pops by itself."""
    storage = huey.storage
    return storage.notify() if isinstance(storage, WakeupSqliteStorage) else 0
