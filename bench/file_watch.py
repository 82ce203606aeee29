"""How fast, and at what cost, a SQLite server hears writes to its database's directory.

Compares the hand-written inotify watch (``overplane.storage.file_watch.FileWatch``) with the
``watchfiles`` library (Rust ``notify``), used the way a server would: a thread runs
``watchfiles.watch`` and hands each batch of changes to the event loop with
``call_soon_threadsafe``. ``watchfiles.awatch`` runs the same Rust loop on a worker thread,
one batch per call, so it costs at least as much. The library's Rust loop sleeps ``step``
milliseconds between looks at what it heard, so it is measured at its default (50 ms) and at
smaller steps, which trade idle CPU for latency.

For each watch, on uvloop as ``overplane serve`` runs:

* latency: another process commits an UPDATE to a WAL-mode SQLite database; from just before
  that commit to the watch's version moving (``changed()`` called on the event loop), as
  CLOCK_MONOTONIC, which is one clock for every process; median and p99;
* idle: CPU time of the whole process (every thread) and of the event-loop thread while
  nothing happens;
* writes by another process: CPU while it commits at a steady rate, and how many times the
  event loop was woken per write;
* the server's own writes: the same, with the commits made by the measuring process itself on
  its event loop (every write a server makes also moves its own watch).

CPU figures are minus the same scenario with no watch at all, so they are the watch's own
cost. Run: ``.venv/bin/python -m bench.file_watch`` (about four minutes; ``--help`` for knobs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import uvloop
import watchfiles

from overplane.storage.file_watch import FileWatch

#: The writer process: ``w`` commits one UPDATE and prints the CLOCK_MONOTONIC nanoseconds
#: taken just before it; ``load RATE SECONDS`` commits RATE times a second for SECONDS.
WRITER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA journal_mode = WAL")
connection.execute("PRAGMA synchronous = NORMAL")
for line in sys.stdin:
    words = line.split()
    if words[0] == "w":
        started = time.monotonic_ns()
        connection.execute("UPDATE counter SET n = n + 1")
        print(started, flush=True)
    elif words[0] == "load":
        rate, seconds = float(words[1]), float(words[2])
        start = time.monotonic()
        count = 0
        while (now := time.monotonic()) < start + seconds:
            connection.execute("UPDATE counter SET n = n + 1")
            count += 1
            time.sleep(max(0.0, start + count / rate - time.monotonic()))
        print(count, flush=True)
"""


class Watch(Protocol):
    """The interface storage/database.py uses: a version that moves on every write."""

    version: int | None

    def changed(self) -> None: ...

    def stop(self) -> None: ...


class LibraryWatch:
    """The candidate: ``watchfiles.watch`` on a thread, each batch handed to the loop."""

    def __init__(self, directory: str, step_ms: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._counter = 1
        self.version: int | None = self._counter
        self._thread = threading.Thread(
            target=self._run, args=(directory, step_ms), name="file-watch", daemon=True
        )
        self._thread.start()

    def _run(self, directory: str, step_ms: int) -> None:
        for _ in watchfiles.watch(
            directory,
            watch_filter=None,  # every change counts, as with the inotify watch
            debounce=step_ms,  # hand changes over as soon as the library allows
            step=step_ms,
            stop_event=self._stop,
            rust_timeout=0,
            recursive=False,
            raise_interrupt=False,
        ):
            self._loop.call_soon_threadsafe(self.changed)

    def changed(self) -> None:
        """Move the version."""
        self._counter += 1
        if self.version is not None:
            self.version = self._counter

    def stop(self) -> None:
        """Stop the thread (it notices within one step)."""
        self.version = None
        self._stop.set()
        self._thread.join()


@dataclass
class Variant:
    """One way of watching, by name."""

    name: str
    start: Callable[[str], Watch | None]


class NoWatch:
    """The baseline: nothing watches, so every CPU figure can subtract it."""

    version: int | None = 1

    def changed(self) -> None:
        """Nothing to move."""

    def stop(self) -> None:
        """Nothing to stop."""


def variants(steps: list[int]) -> list[Variant]:
    """The baseline, the inotify watch, and the library at each step."""
    found: list[Variant] = [
        Variant("none", lambda directory: NoWatch()),
        Variant("inotify (ctypes)", FileWatch.start),
    ]
    for step in steps:
        found.append(Variant(f"watchfiles step={step}ms", library_watch(step)))
    return found


def library_watch(step_ms: int) -> Callable[[str], Watch | None]:
    """A starter of the library's watch at ``step_ms``."""

    def start(directory: str) -> Watch | None:
        return LibraryWatch(directory, step_ms)

    return start


@dataclass
class Figures:
    """What one variant measured."""

    name: str
    latencies_us: list[float] = field(default_factory=list)
    idle_cpu_pct: float = 0.0
    idle_loop_cpu_pct: float = 0.0
    load_cpu_us_per_write: float = 0.0
    load_loop_cpu_us_per_write: float = 0.0
    wakeups_per_write: float = 0.0
    own_cpu_us_per_write: float = 0.0
    own_loop_cpu_us_per_write: float = 0.0


def process_cpu() -> float:
    """CPU seconds of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Writer:
    """The other process that writes to the database."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, database: Path) -> Writer:
        """Start the writer on ``database``."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            str(database),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def ask(self, line: str) -> str:
        """Send one command; its one-line answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        return (await self.process.stdout.readline()).decode().strip()

    async def close(self) -> None:
        """End the writer."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


async def measure(variant: Variant, database: Path, args: argparse.Namespace) -> Figures:
    """Every figure for one variant."""
    figures = Figures(variant.name)
    watch = variant.start(str(database.parent))
    assert watch is not None, f"{variant.name} is not available here"
    heard: list[int] = []
    waiter: list[asyncio.Future[int]] = []
    original = watch.changed

    def changed() -> None:
        now = time.monotonic_ns()
        heard.append(now)
        if waiter and not waiter[0].done():
            waiter[0].set_result(now)
        original()

    watch.changed = changed  # type: ignore[method-assign]  # both watches call it by name
    loop = asyncio.get_running_loop()
    writer = await Writer.start(database)
    # Each write's trailing events (the WAL index) must be heard before the next one starts.
    settle = max(0.02, 3 * max(args.steps, default=0) / 1000)
    await asyncio.sleep(0.5)  # the library's thread sets its watch up
    try:
        if variant.name != "none":
            for _ in range(args.writes):
                await asyncio.sleep(settle)
                waiter[:] = [loop.create_future()]
                started = int(await writer.ask("w"))
                moved = await asyncio.wait_for(waiter[0], 5)
                figures.latencies_us.append((moved - started) / 1000)
        await asyncio.sleep(settle)

        cpu, loop_cpu = process_cpu(), time.thread_time()
        await asyncio.sleep(args.idle_seconds)
        figures.idle_cpu_pct = 100 * (process_cpu() - cpu) / args.idle_seconds
        figures.idle_loop_cpu_pct = 100 * (time.thread_time() - loop_cpu) / args.idle_seconds

        heard.clear()
        cpu, loop_cpu = process_cpu(), time.thread_time()
        writes = int(await writer.ask(f"load {args.rate} {args.load_seconds}"))
        await asyncio.sleep(settle)
        figures.load_cpu_us_per_write = 1e6 * (process_cpu() - cpu) / writes
        figures.load_loop_cpu_us_per_write = 1e6 * (time.thread_time() - loop_cpu) / writes
        figures.wakeups_per_write = len(heard) / writes

        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("PRAGMA synchronous = NORMAL")
        cpu, loop_cpu = process_cpu(), time.thread_time()
        start = time.monotonic()
        writes = 0
        while time.monotonic() < start + args.load_seconds:
            connection.execute("UPDATE counter SET n = n + 1")
            writes += 1
            await asyncio.sleep(max(0.0, start + writes / args.rate - time.monotonic()))
        await asyncio.sleep(settle)
        figures.own_cpu_us_per_write = 1e6 * (process_cpu() - cpu) / writes
        figures.own_loop_cpu_us_per_write = 1e6 * (time.thread_time() - loop_cpu) / writes
        connection.close()
    finally:
        await writer.close()
        watch.stop()
    return figures


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(results: list[Figures], args: argparse.Namespace) -> str:
    """A Markdown table: the baseline's CPU subtracted from every other row."""
    base = results[0]
    lines = [
        f"{args.writes} single writes for latency; {args.rate:g} writes/s for "
        f"{args.load_seconds:g} s under load; {args.idle_seconds:g} s idle; CPU is the "
        "watch's own (the same scenario with no watch subtracted); loop = the event-loop "
        "thread.",
        "",
        "| watch | latency median | latency p99 | idle CPU (process / loop) | CPU per write, "
        "other process's writes (process / loop) | loop wake-ups per write | CPU per write, "
        "own writes (process / loop) |",
        "|---|---|---|---|---|---|---|",
    ]
    for figures in results[1:]:
        median = statistics.median(figures.latencies_us)
        p99 = percentile(figures.latencies_us, 0.99)
        lines.append(
            f"| {figures.name} | {median:,.0f} µs | {p99:,.0f} µs | "
            f"{figures.idle_cpu_pct - base.idle_cpu_pct:.2f} % / "
            f"{figures.idle_loop_cpu_pct - base.idle_loop_cpu_pct:.2f} % | "
            f"{figures.load_cpu_us_per_write - base.load_cpu_us_per_write:.1f} µs / "
            f"{figures.load_loop_cpu_us_per_write - base.load_loop_cpu_us_per_write:.1f} µs | "
            f"{figures.wakeups_per_write:.2f} | "
            f"{figures.own_cpu_us_per_write - base.own_cpu_us_per_write:.1f} µs / "
            f"{figures.own_loop_cpu_us_per_write - base.own_loop_cpu_us_per_write:.1f} µs |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    """Measure every variant on one fresh database, in turn."""
    with tempfile.TemporaryDirectory(prefix="overplane-watch-") as directory:
        database = Path(directory) / "watched.sqlite3"
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        connection.execute("INSERT INTO counter VALUES (0)")
        connection.close()
        results = []
        for variant in variants(args.steps):
            print(f"measuring {variant.name} …", file=sys.stderr, flush=True)
            results.append(await measure(variant, database, args))
    return report(results, args)


def main() -> None:
    """Parse the knobs, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--writes", type=int, default=200, help="writes timed for latency")
    parser.add_argument("--rate", type=float, default=500, help="writes per second under load")
    parser.add_argument("--load-seconds", type=float, default=5, help="length of each load")
    parser.add_argument("--idle-seconds", type=float, default=5, help="length of the idle run")
    parser.add_argument(
        "--steps",
        type=int,
        nargs="*",
        default=[50, 5, 1],
        help="watchfiles step values (ms) to measure",
    )
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, watchfiles {watchfiles.__version__}, {os.uname()}")
    print(uvloop.run(run(args)))


if __name__ == "__main__":
    main()
