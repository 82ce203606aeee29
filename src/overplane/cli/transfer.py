"""``overplane export`` and ``overplane import``: every object of a resource to a file, and a
file's rows to new objects, through the client, with a progress bar on standard error.

Export walks the list by cursor (one page in memory at a time) and writes CSV or JSON Lines.

Import sends one create per row, ``--concurrency`` at a time with the client's
:class:`~overplane.client.bulk.BulkCreates` (the ``AsyncClient``'s calls, retries and errors
over lean HTTP/1.1 connections of its own), each with an ``Idempotency-Key`` derived from the row: the resource, the file's name, the row's
number and the row's content (:func:`row_key`). Run the same file again after an interruption
(a kill, a lost network, a full disk) and every row that was created is replayed by the server
(``Idempotent-Replayed: true``) instead of created twice; a row that was fixed in the file gets
a new key and is created; a rejected row does not stop the others. The file's name, not its
whole content, is part of the key so that editing one row changes only that row's key.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, NamedTuple

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from overplane.cli.data import (
    command_name,
    connection_parameters,
    describe_error,
    filter_parameters,
    filters_from,
    keyword,
    make_command,
    namespace_name,
    new_client,
)
from overplane.cli.output import err, fail, print_json
from overplane.client import APIConnectionError, APIError
from overplane.client.bulk import BulkCreates
from overplane.declarations import READ_ONLY_KEYS, RESOURCES, Resource

#: Rows sent at once when ``--concurrency`` is not given. Measured (docs/performance.md,
#: "Import and export"): from 8 to 64 the rate is flat within the noise on both backends and
#: at 16 the import reaches the server's own create ceiling on SQLite; more only holds more
#: connections and requests in flight.
DEFAULT_CONCURRENCY = 16
#: The version of the key derivation: bump it only with a reason, since old imports'
#: keys would no longer match (a rerun would create again).
KEY_SCHEME = "overplane-import-v1"
#: A list page's size for exports: the API's largest.
PAGE_SIZE = 100
#: How many times a second, at most, the progress bar moves during an import.
PROGRESS_UPDATES = 20


class Format(StrEnum):
    """The file formats of export and import."""

    csv = "csv"
    jsonl = "jsonl"


def format_of(path: Path, given: Format | None) -> Format:
    """The format given, else the one the file's extension names."""
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Format.csv
    if suffix in {".jsonl", ".ndjson"}:
        return Format.jsonl
    raise fail(f"{path.name}: say --format csv or --format jsonl (the extension does not)")


def columns_of(resource: Resource) -> list[str]:
    """An export's columns: the object's keys in the API's order."""
    return [*READ_ONLY_KEYS, *(f.name for f in resource.fields)]


class RowsPerSecond(ProgressColumn):
    """Rows done and their rate, whatever the bar counts (rows, or bytes of the file)."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", task.completed))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:,} rows  {rate:,.0f} rows/s", style="progress.data.speed")


def progress_bar(quiet: bool) -> Progress:
    """A progress bar on standard error: rows, rate, elapsed time and ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=False,
    )


# --- export ---------------------------------------------------------------------------------


class Writer:
    """Writes objects as CSV rows or JSON lines."""

    def __init__(self, out: IO[str], fmt: Format, columns: list[str]) -> None:
        self.out = out
        self.columns = columns
        self.csv = csv.writer(out, lineterminator="\n") if fmt is Format.csv else None
        if self.csv is not None:
            self.csv.writerow(columns)

    def write(self, values: dict[str, Any]) -> None:
        """One object: a CSV row (null as an empty cell) or a JSON line (exactly as sent)."""
        if self.csv is not None:
            self.csv.writerow(["" if values.get(c) is None else values[c] for c in self.columns])
        else:
            self.out.write(json.dumps(values, ensure_ascii=False) + "\n")


def run_export(
    resource: Resource,
    api_key: str | None,
    base_url: str,
    fmt: Format,
    output: Path | None,
    quiet: bool,
    filters: dict[str, Any],
) -> int:
    """Write every object of the (filtered) list; the count written."""
    partial = None if output is None else output.with_name(output.name + ".partial")
    # Into FILE.partial, renamed when complete: an interrupted export never looks finished.
    out: IO[str] = (
        open(partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        if partial is not None
        else sys.stdout
    )
    count = 0
    try:
        with new_client(api_key, base_url) as client, progress_bar(quiet) as bar:
            page = getattr(client, namespace_name(resource)).list(limit=PAGE_SIZE, **filters)
            task = bar.add_task(f"export {command_name(resource)}", total=page.total)
            writer = Writer(out, fmt, columns_of(resource))
            for obj in page.auto_paging_iter():
                writer.write(obj.to_dict())
                count += 1
                if count % PAGE_SIZE == 0:
                    bar.update(task, completed=count, rows=count)
            bar.update(task, completed=count, total=max(count, page.total), rows=count)
    except (APIError, APIConnectionError) as exc:
        raise fail(describe_error(exc, base_url)) from None
    finally:
        if out is sys.stdout:
            out.flush()
        else:
            out.close()
    if partial is not None and output is not None:
        partial.replace(output)
    return count


# --- import ---------------------------------------------------------------------------------


class Row(NamedTuple):
    """One row of the file: its number (as a person counts it: a CSV's header is row 1, a
    JSON Lines file's first line is row 1), its fields, and how many bytes of the file it
    took (for the progress bar)."""

    number: int
    fields: dict[str, Any] | None
    size: int
    problem: str | None = None


def row_key(resource: Resource, file_name: str, number: int, fields: dict[str, Any]) -> str:
    """The row's ``Idempotency-Key``: the same on every run for the same row of the same file,
    and different as soon as the row's content (or its place) changes.

    - The file's name (not its path): moving the file keeps the keys, renaming makes it another
      import.
    - The row's number: two identical rows are two objects.
    - The row's content (canonical JSON): a fixed row gets a new key and is created; an
      unchanged one is replayed. Not the whole file's content, or fixing one rejected row
      would create every other row again.
    """
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    material = "\0".join([KEY_SCHEME, resource.path, file_name, str(number), canonical])
    return "import_" + hashlib.sha256(material.encode()).hexdigest()


def read_csv(resource: Resource, handle: IO[bytes]) -> Iterator[Row]:
    """The rows of a CSV file with a header: an empty cell is a field not sent (null); the
    columns ``id``, ``created_at`` and ``updated_at`` (an export's) are ignored."""
    consumed = 0

    def lines() -> Iterator[str]:
        nonlocal consumed
        for raw in handle:
            consumed += len(raw)
            yield raw.decode("utf-8-sig" if consumed == len(raw) else "utf-8")

    reader = csv.reader(lines())
    header = next(reader, None)
    if header is None:
        return
    known = {f.name for f in resource.fields}
    unknown = [c for c in header if c not in known and c not in READ_ONLY_KEYS]
    if unknown:
        raise fail(
            f"unknown column(s) {', '.join(unknown)}; the fields of {command_name(resource)} "
            f"are {', '.join(f.name for f in resource.fields)}"
        )
    wanted = [(index, name) for index, name in enumerate(header) if name in known]
    before = consumed
    number = 1
    for cells in reader:
        number += 1
        size, before = consumed - before, consumed
        if not cells:
            continue  # a blank line
        if len(cells) != len(header):
            problem = f"{len(cells)} cells where the header has {len(header)}"
            yield Row(number, None, size, problem)
            continue
        fields = {name: cells[index] for index, name in wanted if cells[index] != ""}
        yield Row(number, fields, size)


def read_jsonl(handle: IO[bytes]) -> Iterator[Row]:
    """The rows of a JSON Lines file: one object per line, values as the API takes them;
    ``id``, ``created_at`` and ``updated_at`` (an export's) are ignored."""
    for number, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            yield Row(number, None, len(raw), f"not JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield Row(number, None, len(raw), "not a JSON object")
            continue
        fields = {k: v for k, v in value.items() if k not in READ_ONLY_KEYS}
        yield Row(number, fields, len(raw))


class Outcome(StrEnum):
    """What became of a row."""

    created = "created"
    already_there = "already_there"
    rejected = "rejected"
    failed = "failed"


@dataclass
class Rejection:
    """A row the server (or the file) refused, and why."""

    row: int
    field: str | None
    code: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The rejection as the report writes it."""
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass
class Summary:
    """The counts of an import, and where its report went."""

    created: int = 0
    already_there: int = 0
    rejected: int = 0
    failed: int = 0
    rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it."""
        return {
            "rows": self.rows,
            "created": self.created,
            "already_there": self.already_there,
            "rejected": self.rejected,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


class RejectionReport:
    """Rejected rows, each printed on standard error as it happens and, with ``--rejected
    FILE``, written to a CSV or JSON Lines report (row, field, code, message)."""

    def __init__(self, path: Path | None, show: Callable[[str], None]) -> None:
        self.show = show
        self.handle: IO[str] | None = None
        self.csv: Any = None
        if path is not None:
            self.handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            if path.suffix.lower() != ".jsonl":
                self.csv = csv.writer(self.handle, lineterminator="\n")
                self.csv.writerow(["row", "field", "code", "message"])

    def add(self, rejection: Rejection) -> None:
        """Record one rejected row."""
        where = f" {rejection.field}:" if rejection.field else ""
        code = f" ({rejection.code})" if rejection.code else ""
        self.show(f"row {rejection.row}:{where} {rejection.message}{code}")
        if self.csv is not None:
            self.csv.writerow(
                [rejection.row, rejection.field or "", rejection.code or "", rejection.message]
            )
        elif self.handle is not None:
            self.handle.write(json.dumps(rejection.as_dict(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Flush and close the report file."""
        if self.handle is not None:
            self.handle.close()


async def create_rows(
    resource: Resource,
    creates: BulkCreates,
    rows: Iterator[Row],
    file_name: str,
    concurrency: int,
    done: Callable[[Row, Outcome, Rejection | None], None],
) -> None:
    """Create every row, ``concurrency`` at a time; ``done`` is told each row's outcome.

    Rows are read as workers take them (a bounded queue), so memory stays constant however
    large the file. A row's missing or unknown field is the server's to judge, and reported
    with the row like any other rejection.
    """
    queue: asyncio.Queue[Row | None] = asyncio.Queue(maxsize=concurrency * 4)

    async def worker() -> None:
        while (row := await queue.get()) is not None:
            await create_one(row)

    async def create_one(row: Row) -> None:
        if row.fields is None:
            problem = row.problem or "unreadable"
            done(row, Outcome.rejected, Rejection(row.number, None, None, problem))
            return
        key = row_key(resource, file_name, row.number, row.fields)
        try:
            created = await creates.create(row.fields, key)
        except APIError as exc:
            # A 4xx is the row's fault (stored by the server: a rerun gets it again); a 5xx,
            # or a 429 that outlasted the client's retries, is not, and a rerun may succeed.
            rejected = exc.status is not None and 400 <= exc.status < 500 and exc.status != 429
            rejection = Rejection(row.number, exc.param, exc.code, exc.message)
            done(row, Outcome.rejected if rejected else Outcome.failed, rejection)
            return
        except APIConnectionError as exc:
            done(row, Outcome.failed, Rejection(row.number, None, None, str(exc)))
            return
        done(row, Outcome.created if created else Outcome.already_there, None)

    async def feed() -> None:
        for row in rows:
            await queue.put(row)
        for _ in range(concurrency):
            await queue.put(None)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await feed()
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()


def run_import(
    resource: Resource,
    path: Path,
    fmt: Format,
    api_key: str | None,
    base_url: str,
    concurrency: int,
    rejected_path: Path | None,
    quiet: bool,
) -> Summary:
    """Create an object per row of ``path``; the summary."""
    if not api_key:
        raise fail("no API key: pass --api-key or set OVERPLANE_API_KEY")
    summary = Summary()
    total_bytes = path.stat().st_size
    started = time.monotonic()
    with open(path, "rb") as handle, progress_bar(quiet) as bar:
        task = bar.add_task(f"import {path.name}", total=total_bytes, rows=0)
        report = RejectionReport(rejected_path, lambda line: bar.console.print(line, markup=False))
        rows = read_csv(resource, handle) if fmt is Format.csv else read_jsonl(handle)

        # The bar is moved at most PROGRESS_UPDATES times a second, not once a row: each
        # update costs the import as much CPU as a tenth of a create.
        unshown = 0
        shown_at = 0.0

        def done(row: Row, outcome: Outcome, rejection: Rejection | None) -> None:
            nonlocal unshown, shown_at
            summary.rows += 1
            setattr(summary, outcome.value, getattr(summary, outcome.value) + 1)
            if rejection is not None:
                report.add(rejection)
            unshown += row.size
            if not quiet and (now := time.monotonic()) - shown_at >= 1 / PROGRESS_UPDATES:
                bar.update(task, advance=unshown, rows=summary.rows)
                unshown, shown_at = 0, now

        async def run() -> None:
            async with BulkCreates(
                resource.path, api_key=api_key, base_url=base_url, max_connections=concurrency
            ) as creates:
                await create_rows(resource, creates, rows, path.name, concurrency, done)

        try:
            asyncio.run(run())
        except UnicodeDecodeError as exc:
            # Rows before it were sent (and are safe to send again): say where, and stop.
            raise fail(f"{path.name} is not UTF-8 text after row {summary.rows}: {exc}") from None
        finally:
            bar.update(task, advance=unshown, rows=summary.rows)
            report.close()
            summary.seconds = time.monotonic() - started
    return summary


# --- the commands ---------------------------------------------------------------------------

export_app = typer.Typer(
    help="Write every object of a resource to CSV or JSON Lines, with progress.",
    no_args_is_help=True,
)
import_app = typer.Typer(
    help="Create objects from a CSV or JSON Lines file; safe to run again.", no_args_is_help=True
)

FormatOption = Annotated[
    Format | None, typer.Option("--format", help="csv or jsonl (default: the file's extension).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def add_export_command(resource: Resource) -> None:
    """``overplane export <resource>``, with the resource's list filters."""

    def export(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        fmt: Format | None,
        output: Path | None,
        quiet: bool,
        **options: Any,
    ) -> None:
        filters = filters_from(resource, options)
        chosen = fmt or (format_of(output, None) if output is not None else Format.jsonl)
        started = time.monotonic()
        count = run_export(resource, api_key, base_url, chosen, output, quiet, filters)
        seconds = time.monotonic() - started
        if json_output:
            # The data went to --output; the summary is the JSON result.
            print_json({"rows": count, "seconds": round(seconds, 3), "output": str(output)})
        else:
            where = f" to {output}" if output is not None else ""
            err.print(f"Exported {count:,} {resource.plural}{where} in {seconds:.1f} s.")

    command = make_command(
        command_name(resource),
        export,
        [
            *connection_parameters(),
            keyword("fmt", FormatOption),
            keyword(
                "output",
                Annotated[
                    Path | None,
                    typer.Option("--output", "-o", help="The file (default: standard output)."),
                ],
            ),
            keyword("quiet", QuietOption, False),
            *filter_parameters(resource),
        ],
        f"Export every {resource.title.lower()} (newest first), filtered like a list.",
    )
    export_app.command(command_name(resource))(command)


def add_import_command(resource: Resource) -> None:
    """``overplane import <resource> FILE``."""

    def import_file(
        api_key: str | None,
        base_url: str,
        json_output: bool,
        file: Path,
        fmt: Format | None,
        concurrency: int,
        rejected: Path | None,
        quiet: bool,
    ) -> None:
        summary = run_import(
            resource, file, format_of(file, fmt), api_key, base_url, concurrency, rejected, quiet
        )
        if json_output:
            print_json(summary.as_dict())
        else:
            rate = summary.rows / summary.seconds if summary.seconds else 0.0
            err.print(
                f"{summary.rows:,} rows in {summary.seconds:.1f} s ({rate:,.0f} rows/s): "
                f"{summary.created:,} created, {summary.already_there:,} already there, "
                f"{summary.rejected:,} rejected, {summary.failed:,} failed"
                + (" (run the same command again to retry them)" if summary.failed else "")
            )
        if summary.rejected or summary.failed:
            raise typer.Exit(code=1)

    command = make_command(
        command_name(resource),
        import_file,
        [
            keyword(
                "file",
                Annotated[
                    Path,
                    typer.Argument(exists=True, dir_okay=False, help="A .csv or .jsonl file."),
                ],
                inspect.Parameter.empty,
            ),
            *connection_parameters(),
            keyword("fmt", FormatOption),
            keyword(
                "concurrency",
                Annotated[int, typer.Option(min=1, max=256, help="Rows sent at once.")],
                DEFAULT_CONCURRENCY,
            ),
            keyword(
                "rejected",
                Annotated[
                    Path | None,
                    typer.Option(help="Also write rejected rows here (.csv, or .jsonl)."),
                ],
            ),
            keyword("quiet", QuietOption, False),
        ],
        f"Create a {resource.title.lower()} per row of FILE; rerunning creates nothing twice.",
    )
    import_app.command(command_name(resource))(command)


for _resource in RESOURCES:
    add_export_command(_resource)
    add_import_command(_resource)
