"""The benchmark's results and their markdown: tables, verdicts against the targets, the doc."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import RunResult
from bench.profiling import Profile

#: The generated section of docs/performance.md that ``make bench`` owns.
SECTION = "results"

#: The issues' targets: the lowest acceptable ratio of a median to the ceiling's median.
#: Create, update and list are issue 14's; retrieve and delete the first benchmark issue's.
RATIO_TARGETS: dict[tuple[str, str], float] = {
    ("SQLite", "retrieve"): 0.45,
    ("SQLite", "list"): 0.25,
    ("SQLite", "create"): 0.20,
    ("SQLite", "update"): 0.25,
    ("SQLite", "delete"): 0.25,
    ("PostgreSQL", "retrieve"): 0.30,
    ("PostgreSQL", "list"): 0.20,
    ("PostgreSQL", "create"): 0.15,
    ("PostgreSQL", "update"): 0.15,
    ("PostgreSQL", "delete"): 0.12,
}
#: p99 latency may be at most this many times the same run's p50, in every repetition.
P99_FACTOR = 4.0


@dataclass(frozen=True, slots=True)
class Summary:
    """The repetitions of one measurement (warm-up excluded), with their paired ceiling runs."""

    runs: tuple[RunResult, ...]
    ceiling: tuple[RunResult, ...] = ()

    @property
    def ratio(self) -> float:
        """The median over the repetitions of (req/s) / (req/s of the ceiling run just before)."""
        if not self.ceiling:
            return float("nan")
        return statistics.median(
            r.rps / c.rps for r, c in zip(self.runs, self.ceiling, strict=True)
        )

    @property
    def ceiling_rps(self) -> float:
        return statistics.median(c.rps for c in self.ceiling) if self.ceiling else float("nan")

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def rps_min(self) -> float:
        return min(r.rps for r in self.runs)

    @property
    def rps_max(self) -> float:
        return max(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.runs)

    @property
    def not_found(self) -> int:
        return sum(r.not_found for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def worst_tail(self) -> float:
        """The largest p99 / p50 of the repetitions (the target holds for every one)."""
        return max(r.p99_ms / r.p50_ms if r.p50_ms else float("inf") for r in self.runs)

    @property
    def p99_ok(self) -> bool:
        return self.worst_tail <= P99_FACTOR


@dataclass(frozen=True, slots=True)
class Measurement:
    """One operation on one resource and backend."""

    backend: str
    resource: str
    operation: str
    summary: Summary


@dataclass(frozen=True, slots=True)
class WorkersRow:
    """Retrieve throughput with a number of server processes and a CPU placement."""

    workers: int
    placement: str
    summary: Summary


@dataclass(frozen=True, slots=True)
class AccessLogRow:
    """Retrieve throughput with the access log on or off."""

    enabled: bool
    summary: Summary
    log_lines: int


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """Resident memory per worker: at idle and over a sustained mixed load."""

    label: str
    idle_mib: list[float]
    before_mib: list[float]
    after_mib: list[float]
    peak_mib: list[float]
    second_half_growth_mib: list[float]
    soak_seconds: int
    soak: Summary | None


@dataclass
class Results:
    """Everything one run of the benchmark found."""

    date: str
    machine: dict[str, str]
    versions: dict[str, str]
    settings: dict[str, str]
    ceiling: Summary | None = None
    measurements: list[Measurement] = field(default_factory=list)
    workers: list[WorkersRow] = field(default_factory=list)
    access_log: list[AccessLogRow] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    #: Long runs of one load (appointments): creates, and the mix (the memory soak's run).
    sustained: list[Measurement] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _rps(value: float) -> str:
    return f"{value:,.0f}"


def _range(summary: Summary) -> str:
    return f"{summary.rps_min:,.0f} – {summary.rps_max:,.0f}"


def _mib(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) if values else "–"


def _p99_verdict(summary: Summary) -> str:
    return f"{summary.worst_tail:.1f}× {'met' if summary.p99_ok else '**not met**'}"


def _failed(summary: Summary) -> str:
    if summary.failed == 0:
        return "0"
    return f"**{summary.failed} (404: {summary.not_found}) – invalid**"


def main_table(results: Results) -> list[str]:
    """Every operation, with its ratio to the ceiling and the verdicts on the targets."""
    lines = [
        "| backend | resource | operation | req/s median | min – max | paired ceiling req/s "
        "| ratio to ceiling | ratio target | p50 ms | p99 ms | p99 ≤ 4 × p50 (worst run) "
        "| failed requests |",
        "|---|---|---|--:|--:|--:|--:|---|--:|--:|---|--:|",
    ]
    ceiling = results.ceiling
    if ceiling is not None:
        lines.append(
            f"| ceiling (raw ASGI) | appointment | retrieve | {_rps(ceiling.rps)} "
            f"| {_range(ceiling)} | – | 1.00 | – | {ceiling.p50_ms:.2f} | {ceiling.p99_ms:.2f} "
            f"| {_p99_verdict(ceiling)} | {_failed(ceiling)} |"
        )
    for m in results.measurements:
        s = m.summary
        ratio = s.ratio
        target = RATIO_TARGETS.get((m.backend, m.operation))
        if target is None:
            verdict = "–"
        elif s.failed:
            verdict = f"≥ {target:.2f}: invalid"
        else:
            verdict = f"≥ {target:.2f}: {'met' if ratio >= target else '**not met**'}"
        lines.append(
            f"| {m.backend} | {m.resource} | {m.operation} | {_rps(s.rps)} | {_range(s)} "
            f"| {_rps(s.ceiling_rps)} | {ratio:.2f} | {verdict} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {_p99_verdict(s)} "
            f"| {_failed(s)} |"
        )
    return lines


def target_summary(results: Results) -> list[str]:
    """One line: how many of the targets this run met."""
    ratio_met = ratio_all = p99_met = 0
    missed: list[str] = []
    for m in results.measurements:
        target = RATIO_TARGETS.get((m.backend, m.operation))
        label = f"{m.backend} {m.resource} {m.operation}"
        if target is not None:
            ratio_all += 1
            if m.summary.failed == 0 and m.summary.ratio >= target:
                ratio_met += 1
            else:
                missed.append(f"{label} (ratio)")
        if m.summary.p99_ok:
            p99_met += 1
        else:
            missed.append(f"{label} (p99)")
    for m in results.sustained:
        if m.summary.p99_ok:
            p99_met += 1
        else:
            missed.append(f"{m.backend} {m.resource} sustained {m.operation} (p99)")
    text = (
        f"**Targets met:** ratio {ratio_met} of {ratio_all}; p99 ≤ 4 × p50 in every "
        f"repetition {p99_met} of {len(results.measurements) + len(results.sustained)} "
        "(the sustained runs included)."
    )
    if missed:
        text += " Not met: " + ", ".join(missed) + "."
    return [text]


def sustained_table(results: Results) -> list[str]:
    """The long runs: is the tail still within four times the median after a minute?"""
    lines = [
        "| backend | resource | load | seconds | req/s | p50 ms | p99 ms | p99 ≤ 4 × p50 "
        "| failed requests |",
        "|---|---|---|--:|--:|--:|--:|---|--:|",
    ]
    for m in results.sustained:
        s = m.summary
        seconds = round(s.runs[0].seconds) if s.runs else 0
        lines.append(
            f"| {m.backend} | {m.resource} | {m.operation} | {seconds} | {_rps(s.rps)} "
            f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {_p99_verdict(s)} | {_failed(s)} |"
        )
    return lines


def workers_table(results: Results) -> list[str]:
    lines = [
        "| workers | placement | req/s median | min – max | p50 ms | p99 ms | failed |",
        "|--:|---|--:|--:|--:|--:|--:|",
    ]
    for row in results.workers:
        s = row.summary
        lines.append(
            f"| {row.workers} | {row.placement} | {_rps(s.rps)} | {_range(s)} "
            f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {_failed(s)} |"
        )
    return lines


def access_log_table(results: Results) -> list[str]:
    lines = [
        "| access log | req/s median | min – max | p50 ms | p99 ms | change | log lines written |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    off = next((r for r in results.access_log if not r.enabled), None)
    for row in results.access_log:
        s = row.summary
        cost = "–"
        if row.enabled and off is not None and off.summary.rps:
            cost = f"{(s.rps / off.summary.rps - 1) * 100:+.0f}% req/s"
        lines.append(
            f"| {'on' if row.enabled else 'off'} | {_rps(s.rps)} | {_range(s)} | {s.p50_ms:.2f} "
            f"| {s.p99_ms:.2f} | {cost} | {row.log_lines if row.enabled else '–'} |"
        )
    return lines


def memory_table(results: Results) -> list[str]:
    lines = [
        "| server | idle | before the soak | after the soak | peak during the soak "
        "| growth over the soak's 2nd half | soak (mix) req/s, failed |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in results.memory:
        soak = "–"
        if row.soak is not None:
            soak = f"{row.soak_seconds} s at {_rps(row.soak.rps)} req/s, {_failed(row.soak)}"
        lines.append(
            f"| {row.label} | {_mib(row.idle_mib)} | {_mib(row.before_mib)} "
            f"| {_mib(row.after_mib)} | {_mib(row.peak_mib)} "
            f"| {_mib(row.second_half_growth_mib)} | {soak} |"
        )
    return lines


def profile_table(results: Results) -> list[str]:
    """Share of the busy samples per layer, one column per profiled load."""
    names = list(results.profiles)
    layers: dict[str, float] = {}
    for profile in results.profiles.values():
        for layer in profile.layers:
            layers[layer] = max(layers.get(layer, 0.0), profile.share(layer))
    ordered = sorted(layers, key=lambda layer: -layers[layer])
    lines = [
        "| layer | " + " | ".join(names) + " |",
        "|---|" + "--:|" * len(names),
        "| *server thread busy* | "
        + " | ".join(f"{results.profiles[n].busy:.0%}" for n in names)
        + " |",
    ]
    for layer in ordered:
        cells = [f"{results.profiles[n].share(layer):.1%}" for n in names]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return lines


def render(results: Results) -> str:
    """The generated section of ``docs/performance.md``."""
    out = [
        f"## Latest run ({results.date})",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in results.machine.items()) + ".",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results.versions.items()) + ".",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in results.settings.items()) + ".",
        "",
        "Medians of the repetitions (after a warm-up), with the lowest and highest run; one "
        "server process on one core, wrk on the other. Each repetition runs right after a short "
        "run of the ceiling on the same core; the ratio is the median of the repetitions' "
        "ratios to their ceiling run, so a busy moment of the shared machine hits both. The "
        "ceiling row pools every ceiling run.",
        "",
        *main_table(results),
        "",
        *target_summary(results),
    ]
    if results.sustained:
        out += [
            "",
            "### Sustained load (appointments)",
            "",
            "One long run each of creates and of the mix, on the same server after the table's "
            "runs; the mix is the memory soak's run below.",
            "",
            *sustained_table(results),
        ]
    if results.workers:
        out += [
            "",
            "### One worker against two (retrieve, appointment, SQLite)",
            "",
            "*pinned*: the server's processes share core 0 and wrk has core 1 (the same CPU "
            "budget, so this shows the cost of a second process); *shared*: the server's "
            "processes and wrk may all use both cores.",
            "",
            *workers_table(results),
        ]
    if results.access_log:
        out += [
            "",
            "### The access log (retrieve, appointment, SQLite)",
            "",
            "The server's standard error goes to a file, so the terminal is not what is measured.",
            "",
            *access_log_table(results),
        ]
    if results.memory:
        out += [
            "",
            "### Resident memory per worker (MiB)",
            "",
            "Idle: just after start-up. The soak is the mixed load on appointments; the issue "
            "asks for 5 minutes (`BENCH_SOAK_SECONDS=300`), the default is shorter to keep "
            "`make bench` under 15 minutes.",
            "",
            *memory_table(results),
        ]
    if results.profiles:
        out += [
            "",
            "### Where the time goes (py-spy, appointment)",
            "",
            "Share of the server thread's busy samples per layer; each sample is charged to "
            "its innermost recognisable frame (C code to the Python frame that called it).",
            "",
            *profile_table(results),
        ]
    if results.notes:
        out += ["", "Notes:", "", *(f"- {note}" for note in results.notes)]
    return "\n".join(out) + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN bench {name}", f"<!-- END bench {name} -->"


def replace_section(path: Path, name: str, text: str) -> None:
    """Replace the generated section ``name`` of ``path``, appending it if it is not there yet.

    A section lies between ``<!-- BEGIN bench NAME … -->`` and ``<!-- END bench NAME -->``;
    everything outside it (the hand-written text, other sections) is kept as it is.
    """
    begin, end = _markers(name)
    page = path.read_text() if path.exists() else ""
    start = page.find(begin)
    stop = page.find(end, start) if start >= 0 else -1
    if start < 0 or stop < 0:
        head = page.rstrip("\n") + "\n\n" if page.strip() else ""
        opening = f"{begin}: generated, do not edit by hand -->"
        page, start, stop = f"{head}{opening}\n{end}\n", len(head), len(head) + len(opening) + 1
    opening_end = page.index("-->", start) + len("-->")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{page[:opening_end]}\n{text.rstrip()}\n{page[stop:]}")


def update_doc(path: Path, section: str, template: str) -> None:
    """Replace the results of ``make bench`` in ``path`` (creating the page from ``template``)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template)
    replace_section(path, SECTION, section)
