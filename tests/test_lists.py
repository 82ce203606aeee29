"""List filters, ranges, their errors, and cursor pagination, on both backends.

Covers, for both resources: equality on every field (``?field=`` matches only the empty string,
``field[null]=true|false``), filters combined with AND, ``total`` and ``has_more`` of the
filtered list in list order; ``created_at``/``updated_at`` ranges with exact boundaries
(including sub-millisecond bounds and UTC offsets); ``scheduled_time`` ranges on the values that
parse as RFC 3339 (and only those), which still come back exactly as sent; 400s naming the
parameter for unknown names and operators, malformed values and repeats; ``starting_after`` and
``ending_before`` (Stripe's semantics, with filters, limits, deleted cursors, and ids that are not
this account's); and whole-list walks by cursor while other writes interleave.

Expected results are computed here from first principles (exact integer instants), never with
the server's own parsing code.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from overplane.declarations import APPOINTMENT, PARTY_LINK, RESOURCES, Resource
from tests.helpers import Caller, Params, Server, valid_body

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_MS = 1_000_000

# --------------------------------------------------------------------------------------------
# Helpers


def create_spaced(api: Caller, resource: Resource, count: int, **fields: str | None) -> list[Any]:
    """``count`` objects whose ``created_at`` values are all different milliseconds (oldest first)."""
    made: list[dict[str, Any]] = []
    for _ in range(count):
        made.append(api.create(resource, **fields))
        time.sleep(0.003)
    stamps = [epoch_ns(obj["created_at"]) for obj in made]
    assert stamps == sorted(set(stamps)), "the objects must be at distinct milliseconds"
    return made


def ids(body: dict[str, Any]) -> list[str]:
    """The ids of a list envelope's objects, in the order given."""
    return [obj["id"] for obj in body["data"]]


def newest_first(objects: Sequence[dict[str, Any]]) -> list[str]:
    """The ids of objects created in the order given, in list order."""
    return [obj["id"] for obj in reversed(objects)]


def rejected(api: Caller, resource: Resource, params: Params) -> dict[str, Any]:
    """The error object of a list request that must be a 400."""
    response = api.get(resource.path, params=params)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


def epoch_ns(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 value with up to nine fraction digits."""
    match = _STAMP.fullmatch(stamp)
    assert match is not None, stamp
    head, fraction, zone = match.groups()
    moment = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    whole_seconds = (moment - EPOCH) // timedelta(seconds=1)
    return whole_seconds * 10**9 + int((fraction or "").ljust(9, "0"))


def rfc3339(ns: int, offset_minutes: int = 0, digits: int = 9) -> str:
    """An RFC 3339 rendering of the instant ``ns`` in a UTC offset, with ``digits`` fraction digits."""
    seconds, fraction = divmod(ns, 10**9)
    assert fraction % 10 ** (9 - digits) == 0, "the instant needs more fraction digits"
    zone = timezone(timedelta(minutes=offset_minutes))
    text = datetime.fromtimestamp(seconds, zone).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def holds(value: int, operator: str, bound: int) -> bool:
    """Whether ``value <op> bound`` for a range operator name."""
    return {
        "gt": value > bound,
        "gte": value >= bound,
        "lt": value < bound,
        "lte": value <= bound,
    }[operator]


OPERATORS = ("gt", "gte", "lt", "lte")
FIELDS = [pytest.param(r, f.name, id=f"{r.name}.{f.name}") for r in RESOURCES for f in r.fields]


# --------------------------------------------------------------------------------------------
# Equality and null filters


@pytest.mark.parametrize(("resource", "name"), FIELDS)
def test_equality_and_null_filters_on_every_field(
    api: Caller, resource: Resource, name: str
) -> None:
    """Every field filters by exact equality; ``?f=`` matches only ""; ``f[null]`` splits null."""
    field = resource.fields_by_name[name]
    wanted = f"wanted {name} é"
    matching = [api.create(resource, **{name: wanted})]
    api.create(resource, **{name: "other value"})
    api.create(resource, **{name: wanted + "x"})  # a longer string is not a match
    api.create(resource, **{name: wanted[:-1]})  # nor is a prefix
    api.create(resource, **{name: wanted.upper()})  # equality is case-sensitive
    api.create(resource, **{name: wanted + " "})  # and does not trim
    matching.append(api.create(resource, **{name: wanted}))
    empty = null = None
    if not field.required:  # a required field can be neither "" nor null
        empty = api.create(resource, **{name: ""})
        null = api.create(resource, **{name: None})
    everything = api.list(resource, {"limit": "100"})

    found = api.list(resource, {name: wanted})
    assert ids(found) == newest_first(matching)
    assert (found["total"], found["has_more"]) == (2, False)
    assert all(obj[name] == wanted for obj in found["data"])

    found = api.list(resource, {name: ""})
    assert ids(found) == ([] if empty is None else [empty["id"]])
    assert found["total"] == len(found["data"])

    found = api.list(resource, {f"{name}[null]": "true"})
    assert ids(found) == ([] if null is None else [null["id"]])
    assert found["total"] == len(found["data"])

    found = api.list(resource, {f"{name}[null]": "false", "limit": "100"})
    assert ids(found) == [i for i in ids(everything) if null is None or i != null["id"]]
    assert found["total"] == everything["total"] - (0 if null is None else 1)


@pytest.mark.parametrize(
    ("resource", "name"),
    [
        pytest.param(APPOINTMENT, "customer_details", id="appointment.customer_details"),
        pytest.param(PARTY_LINK, "secondary_party", id="party-link.secondary_party"),
    ],
)
def test_equality_compares_whole_long_values(api: Caller, resource: Resource, name: str) -> None:
    """Values that share a long prefix (beyond any index prefix) are still told apart."""
    common = "p" * 150
    first = api.create(resource, **{name: common + "-first"})
    second = api.create(resource, **{name: common + "-second"})
    longest = api.create(resource, **{name: "q" * 1000})
    assert ids(api.list(resource, {name: common + "-first"})) == [first["id"]]
    assert ids(api.list(resource, {name: common + "-second"})) == [second["id"]]
    assert ids(api.list(resource, {name: common})) == []
    assert ids(api.list(resource, {name: "q" * 1000})) == [longest["id"]]
    assert ids(api.list(resource, {name: "q" * 999})) == []
    assert ids(api.list(resource, {name: "q" * 5000})) == []  # longer than any value


def test_equality_treats_sql_wildcards_literally(api: Caller) -> None:
    """``%`` and ``_`` in a filter value are plain characters, not patterns."""
    percent = api.create(APPOINTMENT, status="a%c")
    underscore = api.create(APPOINTMENT, status="a_c")
    api.create(APPOINTMENT, status="abc")
    assert ids(api.list(APPOINTMENT, {"status": "a%c"})) == [percent["id"]]
    assert ids(api.list(APPOINTMENT, {"status": "a_c"})) == [underscore["id"]]
    assert ids(api.list(APPOINTMENT, {"status": "a%"})) == []


def test_filters_combine_with_and(api: Caller) -> None:
    """Several filters must all hold; ``total`` counts the objects that meet every one."""
    made: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for _ in range(2):
        for status in ("draft", "done"):
            for party in ("p1", "p2", None):
                made.setdefault((status, party), []).append(
                    api.create(APPOINTMENT, status=status, party=party)
                )
    for status in ("draft", "done"):
        for party in ("p1", "p2"):
            found = api.list(APPOINTMENT, {"status": status, "party": party})
            assert ids(found) == newest_first(made[status, party])
            assert (found["total"], found["has_more"]) == (2, False)
        found = api.list(APPOINTMENT, {"status": status, "party[null]": "true"})
        assert ids(found) == newest_first(made[status, None])
        found = api.list(APPOINTMENT, {"status": status, "party[null]": "false", "party": "p2"})
        assert ids(found) == newest_first(made[status, "p2"])
    assert api.list(APPOINTMENT, {"status": "draft", "party": "p3"})["total"] == 0
    # A range combines with equality, too.
    newest_draft_p1 = made["draft", "p1"][1]
    found = api.list(
        APPOINTMENT,
        {"status": "draft", "party": "p1", "created_at[gte]": newest_draft_p1["created_at"]},
    )
    assert newest_draft_p1["id"] in ids(found)
    assert set(ids(found)) <= {o["id"] for o in made["draft", "p1"]}


def test_filtered_total_and_has_more_describe_the_filtered_list(
    api: Caller, resource: Resource
) -> None:
    """With a filter, pages hold matching objects newest first; total/has_more count only them."""
    name = resource.required_fields[0].name
    matching: list[dict[str, Any]] = []
    for index in range(7):
        matching.append(api.create(resource, **{name: "match"}))
        if index % 2 == 0:
            api.create(resource, **{name: "no match"})
    expected = newest_first(matching)
    assert api.list(resource)["total"] == 11

    first = api.list(resource, {name: "match", "limit": "3"})
    assert ids(first) == expected[:3]
    assert (first["total"], first["has_more"]) == (7, True)
    middle = api.list(resource, {name: "match", "limit": "3", "offset": "3"})
    assert ids(middle) == expected[3:6]
    assert (middle["total"], middle["has_more"]) == (7, True)
    last = api.list(resource, {name: "match", "limit": "3", "offset": "6"})
    assert ids(last) == expected[6:]
    assert (last["total"], last["has_more"]) == (7, False)
    past = api.list(resource, {name: "match", "offset": "7"})
    assert (past["data"], past["total"], past["has_more"]) == ([], 7, False)
    exact = api.list(resource, {name: "match", "limit": "7"})
    assert (ids(exact), exact["has_more"]) == (expected, False)


def test_filters_see_only_the_callers_account_and_mode(server: Server, api: Caller) -> None:
    """A filter never matches another account's objects, nor the other mode's."""
    mine = api.create(PARTY_LINK, primary_role="shared role")
    server.new_caller().create(PARTY_LINK, primary_role="shared role")
    server.new_caller("live", api.account_name).create(PARTY_LINK, primary_role="shared role")
    found = api.list(PARTY_LINK, {"primary_role": "shared role"})
    assert (ids(found), found["total"]) == ([mine["id"]], 1)


# --------------------------------------------------------------------------------------------
# created_at and updated_at ranges


def bounds_around(instants: Sequence[int]) -> list[str]:
    """RFC 3339 bounds at, just before and just after each instant, in several spellings."""
    spelled: list[str] = []
    for ns in instants:
        spelled += [
            rfc3339(ns, digits=3),
            rfc3339(ns, offset_minutes=120, digits=3),  # the same instant at +02:00
            rfc3339(ns, offset_minutes=-330, digits=6),  # and at -05:30
            rfc3339(ns + NS_PER_MS // 2, digits=4),  # half a millisecond after
            rfc3339(ns - NS_PER_MS // 2, offset_minutes=60, digits=4),  # half before
            rfc3339(ns + 1),  # a nanosecond after
            rfc3339(ns - 1, offset_minutes=-60),  # a nanosecond before
        ]
    return spelled


def check_ranges(
    api: Caller, resource: Resource, key: str, objects: Sequence[dict[str, Any]], bounds: list[str]
) -> None:
    """Every operator of ``key`` with every bound returns exactly the objects it should."""
    order = newest_first(objects)
    instants = {obj["id"]: epoch_ns(obj[key]) for obj in objects}
    for bound in bounds:
        bound_ns = epoch_ns(bound)
        for operator in OPERATORS:
            param = f"{key}[{operator}]"
            expected = [i for i in order if holds(instants[i], operator, bound_ns)]
            found = api.list(resource, {param: bound, "limit": "100"})
            assert ids(found) == expected, f"{param}={bound}"
            assert found["total"] == len(expected)


def test_rfc3339_helpers_round_trip_exactly() -> None:
    """The test's own RFC 3339 round trip is exact (the range tests build bounds with it)."""
    for ns in (1_705_309_200_123_456_789, 1_705_309_200_000_000_000, 1):
        for offset in (0, 120, -330):
            assert epoch_ns(rfc3339(ns, offset_minutes=offset)) == ns


def test_created_at_ranges_are_exact_at_every_boundary(api: Caller) -> None:
    """created_at[gt|gte|lt|lte]: gt excludes the exact millisecond, gte includes it; offsets
    and fractions below a millisecond compare as the instants they name."""
    objects = create_spaced(api, PARTY_LINK, 5)
    instants = [epoch_ns(obj["created_at"]) for obj in objects]
    check_ranges(api, PARTY_LINK, "created_at", objects, bounds_around(instants[1:4]))

    # The brief's example: .0005 after t excludes t and includes nothing older.
    t = objects[2]["created_at"]
    half = t[:-1] + "5Z"
    assert ids(api.list(PARTY_LINK, {"created_at[gt]": half})) == newest_first(objects[3:])
    assert ids(api.list(PARTY_LINK, {"created_at[lte]": half})) == newest_first(objects[:3])
    assert ids(api.list(PARTY_LINK, {"created_at[gt]": t})) == newest_first(objects[3:])
    assert ids(api.list(PARTY_LINK, {"created_at[gte]": t})) == newest_first(objects[2:])


def test_created_at_window_combines_two_operators(api: Caller) -> None:
    """Two bounds on one key give the window between them, newest first, with its total."""
    objects = create_spaced(api, APPOINTMENT, 5)
    found = api.list(
        APPOINTMENT,
        {"created_at[gte]": objects[1]["created_at"], "created_at[lt]": objects[4]["created_at"]},
    )
    assert ids(found) == newest_first(objects[1:4])
    assert (found["total"], found["has_more"]) == (3, False)
    page = api.list(
        APPOINTMENT,
        {
            "created_at[gt]": objects[0]["created_at"],
            "created_at[lte]": objects[3]["created_at"],
            "limit": "2",
        },
    )
    assert ids(page) == newest_first(objects[2:4])
    assert (page["total"], page["has_more"]) == (3, True)
    empty = api.list(
        APPOINTMENT,
        {"created_at[gt]": objects[3]["created_at"], "created_at[lt]": objects[1]["created_at"]},
    )
    assert (empty["data"], empty["total"]) == ([], 0)


def test_updated_at_ranges_follow_updates(api: Caller, resource: Resource) -> None:
    """updated_at ranges are exact too, and an update moves an object into a later range."""
    objects = create_spaced(api, resource, 4)
    latest = objects[-1]["updated_at"]
    assert api.list(resource, {"updated_at[gt]": latest})["total"] == 0

    name = resource.fields[-1].name
    response = api.patch(f"{resource.path}/{objects[1]['id']}", json={name: "changed"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert epoch_ns(updated["updated_at"]) > epoch_ns(latest)
    objects[1] = updated

    assert ids(api.list(resource, {"updated_at[gt]": latest})) == [updated["id"]]
    assert ids(api.list(resource, {"updated_at[lte]": latest})) == [
        objects[3]["id"],
        objects[2]["id"],
        objects[0]["id"],
    ]
    # The update did not move the object in created_at order or ranges.
    assert ids(api.list(resource)) == newest_first(objects)
    assert updated["id"] in ids(api.list(resource, {"created_at[lt]": latest}))
    instants = [epoch_ns(obj["updated_at"]) for obj in objects]
    check_ranges(api, resource, "updated_at", objects, bounds_around(instants[2:]))


# --------------------------------------------------------------------------------------------
# scheduled_time ranges


def at(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0
) -> int:
    """Nanoseconds since the epoch of a UTC wall-clock time (``micro`` may be negative)."""
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    moment += timedelta(microseconds=micro)
    return ((moment - EPOCH) // timedelta(microseconds=1)) * 1000


#: Values sent as scheduled_time, and the instant each names (None: not an RFC 3339 date-time).
SCHEDULED: dict[str, int | None] = {
    "2024-01-15T09:00:00Z": at(2024, 1, 15, 9),
    "2024-01-15T10:00:00+01:00": at(2024, 1, 15, 9),  # the same instant, another offset
    "2024-01-15T09:00:00.000001Z": at(2024, 1, 15, 9, micro=1),
    "2024-01-15T08:59:59.999999Z": at(2024, 1, 15, 9, micro=-1),
    "2024-01-14T23:30:00-10:00": at(2024, 1, 15, 9, 30),
    "2024-01-15T09:00:00.5-00:00": at(2024, 1, 15, 9, micro=500_000),
    "1999-12-31T23:59:59Z": at(1999, 12, 31, 23, 59, 59),
    "2124-06-01T00:00:00+14:00": at(2124, 5, 31, 10),
    "scheduled_time_example": None,
    "2024-02-30T00:00:00Z": None,  # February 30th does not exist
    "2024-01-15": None,  # a date, not a date-time
    "2024-01-15T09:00:00": None,  # no offset
    "2024-01-15 09:00:00Z": None,  # a space is not the T
    "2024-01-15T09:00:00Z ": None,  # trailing text
    "2024-01-15T25:00:00Z": None,
    "tomorrow at nine": None,
}


def scheduled_bounds() -> list[str]:
    """Bounds around the interesting instants, including between-microsecond ones."""
    nine = at(2024, 1, 15, 9)
    return [
        "2024-01-15T09:00:00Z",
        "2024-01-15T11:00:00+02:00",
        "2024-01-15T09:00:00.0000005Z",  # half a microsecond after nine
        "2024-01-15T08:59:59.9999995Z",  # half a microsecond before nine
        rfc3339(nine + 1_000, offset_minutes=-90),
        rfc3339(nine - 1_000, offset_minutes=90),
        "2024-01-15T09:30:00Z",
        "2000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
    ]


def test_scheduled_time_ranges_match_only_parsed_values(api: Caller) -> None:
    """scheduled_time[op] compares the instants of values that parse (offsets normalised), at
    microsecond precision (values and bounds truncated alike); values that do not parse never
    match a range, but are returned as sent and match equality."""
    made = {value: api.create(APPOINTMENT, scheduled_time=value) for value in SCHEDULED}
    order = ids(api.list(APPOINTMENT, {"limit": "100"}))
    assert order == newest_first(list(made.values()))
    value_of = {obj["id"]: value for value, obj in made.items()}
    for bound in scheduled_bounds():
        bound_us = epoch_ns(bound) // 1000
        for operator in OPERATORS:
            param = f"scheduled_time[{operator}]"
            expected = [
                i
                for i in order
                if (ns := SCHEDULED[value_of[i]]) is not None
                and holds(ns // 1000, operator, bound_us)
            ]
            found = api.list(APPOINTMENT, {param: bound, "limit": "100"})
            assert ids(found) == expected, f"{param}={bound}"
            assert found["total"] == len(expected)
            assert all(obj["scheduled_time"] == value_of[obj["id"]] for obj in found["data"])

    # Equality compares the strings as sent: another spelling of an instant is another value.
    for value, obj in made.items():
        found = api.list(APPOINTMENT, {"scheduled_time": value})
        assert ids(found) == [obj["id"]], value
        assert found["data"][0]["scheduled_time"] == value


def test_scheduled_time_updates_move_objects_in_and_out_of_ranges(api: Caller) -> None:
    """Changing scheduled_time re-reads it; updating another field leaves it as it was."""
    window = {
        "scheduled_time[gte]": "2024-01-15T00:00:00Z",
        "scheduled_time[lt]": "2024-01-16T00:00:00Z",
    }
    inside = api.create(APPOINTMENT, scheduled_time="2024-01-15T12:00:00Z")
    unparsed = api.create(APPOINTMENT, scheduled_time="scheduled_time_example")
    other = api.create(APPOINTMENT, scheduled_time="2024-01-15T13:00:00+01:00")
    assert ids(api.list(APPOINTMENT, window)) == [other["id"], inside["id"]]

    def patch(obj: dict[str, Any], **fields: str) -> None:
        response = api.patch(f"{APPOINTMENT.path}/{obj['id']}", json=fields)
        assert response.status_code == 200, response.text
        for key, value in fields.items():
            assert response.json()[key] == value

    patch(inside, scheduled_time="2030-01-01T00:00:00Z")
    patch(unparsed, scheduled_time="2024-01-15T23:59:59.999999Z")
    patch(other, status="done")  # not scheduled_time: it stays in range
    assert ids(api.list(APPOINTMENT, window)) == [other["id"], unparsed["id"]]
    found = api.list(APPOINTMENT, {"scheduled_time[gte]": "2030-01-01T00:00:00Z"})
    assert ids(found) == [inside["id"]]

    patch(other, scheduled_time="no longer a date")
    assert ids(api.list(APPOINTMENT, window)) == [unparsed["id"]]
    everything = {"scheduled_time[gte]": "0001-01-01T00:00:00Z"}
    assert ids(api.list(APPOINTMENT, everything)) == [unparsed["id"], inside["id"]]
    patch(other, scheduled_time="2024-01-15T00:00:00-00:00")
    assert ids(api.list(APPOINTMENT, window)) == [other["id"], unparsed["id"]]
    assert api.list(APPOINTMENT, {"scheduled_time[null]": "true"})["total"] == 0


# --------------------------------------------------------------------------------------------
# Errors


UNKNOWN = [
    (APPOINTMENT, "foo", "1"),
    (APPOINTMENT, "status[gt]", "draft"),
    (APPOINTMENT, "status[]", "draft"),
    (APPOINTMENT, "Status", "draft"),
    (APPOINTMENT, "created_at[null]", "true"),
    (APPOINTMENT, "created_at[eq]", "2024-01-15T09:00:00Z"),
    (APPOINTMENT, "foo[bar]", "1"),
    (APPOINTMENT, "customer_name[gte]", "2024-01-15T09:00:00Z"),
    (APPOINTMENT, "scheduled_time[between]", "2024-01-15T09:00:00Z"),
    (APPOINTMENT, "primary_role", "x"),  # the other resource's field
    (PARTY_LINK, "status", "draft"),
    (PARTY_LINK, "scheduled_time[gte]", "2024-01-15T09:00:00Z"),
    (PARTY_LINK, "primary_role[lt]", "2024-01-15T09:00:00Z"),
    (PARTY_LINK, "updated_at[null]", "false"),
    (PARTY_LINK, "primary_role[null][null]", "true"),
]


@pytest.mark.parametrize(
    ("resource", "param", "value"),
    [pytest.param(r, p, v, id=f"{r.name}:{p}") for r, p, v in UNKNOWN],
)
def test_unknown_parameter_or_operator_is_named(
    api: Caller, resource: Resource, param: str, value: str
) -> None:
    """An unknown name, operator, or a range on a field without one: 400 parameter_unknown."""
    error = rejected(api, resource, {param: value})
    assert (error["code"], error["param"]) == ("parameter_unknown", param)
    # Also when it comes after valid parameters.
    error = rejected(
        api, resource, [("limit", "5"), ("created_at[gte]", "2024-01-15T09:00:00Z"), (param, value)]
    )
    assert (error["code"], error["param"]) == ("parameter_unknown", param)


INVALID = [
    (PARTY_LINK, "created_at[gt]", "yesterday"),
    (PARTY_LINK, "created_at[gte]", ""),
    (PARTY_LINK, "created_at[lt]", "2024-02-30T00:00:00Z"),
    (PARTY_LINK, "created_at[lte]", "2024-01-15"),
    (PARTY_LINK, "updated_at[gt]", "2024-01-15T09:00:00"),
    (PARTY_LINK, "updated_at[lte]", "1705309200000"),
    (PARTY_LINK, "primary_role[null]", "maybe"),
    (PARTY_LINK, "secondary_role[null]", ""),
    (APPOINTMENT, "status[null]", "maybe"),
    (APPOINTMENT, "scheduled_time[gte]", "scheduled_time_example"),
    (APPOINTMENT, "scheduled_time[lt]", "2024-01-15T09:00:00+25:00"),
    (APPOINTMENT, "status", "a\x00b"),  # no stored value can hold a NUL
    (APPOINTMENT, "starting_after", "garbage"),
    (APPOINTMENT, "ending_before", ""),
]


@pytest.mark.parametrize(
    ("resource", "param", "value"),
    [pytest.param(r, p, v, id=f"{r.name}:{p}={v}") for r, p, v in INVALID],
)
def test_malformed_value_is_named(api: Caller, resource: Resource, param: str, value: str) -> None:
    """A known parameter with a value it cannot take: 400 parameter_invalid naming it."""
    error = rejected(api, resource, {param: value, "limit": "3"})
    assert (error["code"], error["param"]) == ("parameter_invalid", param)
    assert error["message"]


@pytest.mark.parametrize(
    "param",
    ["status", "status[null]", "created_at[gt]", "scheduled_time[lte]", "limit", "offset"],
)
def test_repeated_parameter_is_rejected(api: Caller, param: str) -> None:
    """A parameter given twice (even with the same value) is a 400 naming it."""
    value = {
        "status": "draft",
        "status[null]": "false",
        "limit": "5",
        "offset": "0",
    }.get(param, "2024-01-15T09:00:00Z")
    error = rejected(
        api,
        APPOINTMENT,
        [(param, value), ("limit" if param != "limit" else "offset", "1"), (param, value)],
    )
    assert (error["code"], error["param"]) == ("parameter_invalid", param)


def test_repeated_cursor_is_rejected(api: Caller) -> None:
    """starting_after given twice is a 400 naming it, even for an existing id."""
    obj = api.create(PARTY_LINK)
    error = rejected(
        api, PARTY_LINK, [("starting_after", obj["id"]), ("starting_after", obj["id"])]
    )
    assert (error["code"], error["param"]) == ("parameter_invalid", "starting_after")


# --------------------------------------------------------------------------------------------
# Cursors


def test_cursors_page_in_list_order(api: Caller, resource: Resource) -> None:
    """starting_after gives the older objects after the cursor, ending_before the newer ones
    before it, each page newest first; has_more looks beyond the page in the direction of
    travel; total is the whole list."""
    objects = [api.create(resource) for _ in range(7)]
    order = newest_first(objects)
    for index, cursor in enumerate(order):
        for limit in (1, 2, 3, 100):
            after = api.list(resource, {"starting_after": cursor, "limit": str(limit)})
            assert ids(after) == order[index + 1 : index + 1 + limit]
            assert after["has_more"] == (index + 1 + limit < len(order))
            assert after["total"] == len(order)
            before = api.list(resource, {"ending_before": cursor, "limit": str(limit)})
            assert ids(before) == order[max(0, index - limit) : index]
            assert before["has_more"] == (index - limit > 0)
            assert before["total"] == len(order)
    default = api.list(resource, {"starting_after": order[0]})
    assert ids(default) == order[1:]
    assert api.list(resource, {"starting_after": order[0], "offset": "0"}) == default


def test_cursors_combine_with_filters(api: Caller) -> None:
    """With filters, a cursor pages through the matching objects; the cursor object itself need
    not match; total is the filtered count."""
    objects = [api.create(APPOINTMENT, status="odd" if i % 2 else "even") for i in range(10)]
    order = newest_first(objects)
    odd = [i for i in order if i in {o["id"] for o in objects[1::2]}]
    assert len(odd) == 5

    page = api.list(APPOINTMENT, {"status": "odd", "starting_after": odd[1], "limit": "2"})
    assert (ids(page), page["has_more"], page["total"]) == (odd[2:4], True, 5)
    page = api.list(APPOINTMENT, {"status": "odd", "starting_after": odd[2], "limit": "2"})
    assert (ids(page), page["has_more"], page["total"]) == (odd[3:5], False, 5)
    page = api.list(APPOINTMENT, {"status": "odd", "ending_before": odd[3], "limit": "2"})
    assert (ids(page), page["has_more"], page["total"]) == (odd[1:3], True, 5)
    page = api.list(APPOINTMENT, {"status": "odd", "ending_before": odd[2], "limit": "2"})
    assert (ids(page), page["has_more"], page["total"]) == (odd[0:2], False, 5)

    # An even (non-matching) object as the cursor: the odd ones on the right side of it.
    even_cursor = order[3]
    assert even_cursor not in odd
    older = [i for i in odd if order.index(i) > 3]
    newer = [i for i in odd if order.index(i) < 3]
    assert older
    assert newer
    page = api.list(APPOINTMENT, {"status": "odd", "starting_after": even_cursor})
    assert (ids(page), page["total"]) == (older, 5)
    page = api.list(APPOINTMENT, {"status": "odd", "ending_before": even_cursor})
    assert (ids(page), page["total"]) == (newer, 5)

    # A range with a cursor.
    window = {"created_at[gte]": objects[0]["created_at"], "status[null]": "false"}
    page = api.list(APPOINTMENT, {**window, "starting_after": order[2], "limit": "3"})
    assert (ids(page), page["total"], page["has_more"]) == (order[3:6], 10, True)


def test_cursor_with_nonzero_offset_is_rejected(api: Caller) -> None:
    """A cursor with offset ≠ 0 is a 400 naming offset; both cursors at once is a 400."""
    obj = api.create(APPOINTMENT)
    for cursor in ("starting_after", "ending_before"):
        error = rejected(api, APPOINTMENT, {cursor: obj["id"], "offset": "1"})
        assert (error["code"], error["param"]) == ("parameter_invalid", "offset")
        error = rejected(api, APPOINTMENT, {"offset": "5", cursor: obj["id"], "status": "x"})
        assert error["param"] == "offset"
    error = rejected(api, APPOINTMENT, {"starting_after": obj["id"], "ending_before": obj["id"]})
    assert error["code"] == "parameter_invalid"
    assert error["param"] in {"starting_after", "ending_before"}


def test_cursor_naming_no_object_of_this_account_is_rejected(server: Server, api: Caller) -> None:
    """An id that is unknown, another account's, the other mode's, another resource's, or not
    an id at all: 400 parameter_invalid naming the cursor parameter (deleted ones included)."""
    api.create(APPOINTMENT)
    other_account = server.new_caller()
    live = server.new_caller("live", api.account_name)
    foreign = other_account.create(APPOINTMENT)["id"]
    foreign_deleted = other_account.create(APPOINTMENT)["id"]
    live_id = live.create(APPOINTMENT)["id"]
    live_deleted = live.create(APPOINTMENT)["id"]
    link = api.create(PARTY_LINK)["id"]
    link_deleted = api.create(PARTY_LINK)["id"]
    assert other_account.delete(f"{APPOINTMENT.path}/{foreign_deleted}").status_code == 200
    assert live.delete(f"{APPOINTMENT.path}/{live_deleted}").status_code == 200
    assert api.delete(f"{PARTY_LINK.path}/{link_deleted}").status_code == 200
    mine = api.create(APPOINTMENT)["id"]
    unknown = "appointment_" + "0" * 25
    candidates = [
        unknown,
        foreign,
        foreign_deleted,
        live_id,
        live_deleted,
        link,
        link_deleted,
        "appointment_",
        "garbage",
        mine + "x",
        mine.upper(),
        mine + "\x00",
        "appointment_" + "Z" * 60,
    ]
    for candidate in candidates:
        for cursor in ("starting_after", "ending_before"):
            error = rejected(api, APPOINTMENT, {cursor: candidate})
            assert (error["code"], error["param"]) == ("parameter_invalid", cursor), candidate
    # The same ids are fine where they belong.
    assert other_account.list(APPOINTMENT, {"ending_before": foreign_deleted})["total"] == 1
    assert live.list(APPOINTMENT, {"starting_after": live_id})["total"] == 1
    assert api.list(PARTY_LINK, {"starting_after": link})["total"] == 1


def test_cursor_naming_a_deleted_object_keeps_its_place(api: Caller, resource: Resource) -> None:
    """A cursor whose object was deleted after it was read still pages from where it stood."""
    objects = [api.create(resource) for _ in range(6)]
    order = newest_first(objects)
    assert api.delete(f"{resource.path}/{order[2]}").status_code == 200
    assert api.delete(f"{resource.path}/{order[3]}").status_code == 200
    after = api.list(resource, {"starting_after": order[2], "limit": "1"})
    assert (ids(after), after["has_more"], after["total"]) == ([order[4]], True, 4)
    after = api.list(resource, {"starting_after": order[3]})
    assert (ids(after), after["has_more"]) == (order[4:], False)
    before = api.list(resource, {"ending_before": order[3]})
    assert (ids(before), before["has_more"], before["total"]) == (order[:2], False, 4)
    before = api.list(resource, {"ending_before": order[2], "limit": "1"})
    assert (ids(before), before["has_more"]) == ([order[1]], True)


# --------------------------------------------------------------------------------------------
# Whole-list walks while others write


class Walk:
    """One account's objects as the test knows them, with random writes between pages."""

    def __init__(self, api: Caller, resource: Resource, rng: random.Random, filtered: bool):
        self.api = api
        self.resource = resource
        self.rng = rng
        self.key = resource.required_fields[0].name
        self.other = resource.fields[-1].name
        assert self.other != self.key
        self.filter = {self.key: "walk"} if filtered else {}
        self.created: dict[str, int] = {}  # id → creation rank, which is list order
        self.matching: set[str] = set()
        self.alive: set[str] = set()
        self.deleted_at: dict[str, int] = {}  # id → the page number before which it was deleted
        self.pages = 0

    def create(self) -> str:
        value = "walk" if not self.filter or self.rng.random() < 0.6 else "skip"
        obj = self.api.create(self.resource, **{self.key: value})
        self.created[obj["id"]] = len(self.created)
        self.alive.add(obj["id"])
        if not self.filter or value == "walk":
            self.matching.add(obj["id"])
        return str(obj["id"])

    def delete(self, object_id: str) -> None:
        response = self.api.delete(f"{self.resource.path}/{object_id}")
        assert response.status_code == 200, response.text
        self.alive.discard(object_id)
        self.deleted_at[object_id] = self.pages

    def interfere(self, cursor: str | None, may_create: bool) -> None:
        """Random writes by "other clients" before the next page."""
        for _ in range(self.rng.randint(0, 4)):
            roll = self.rng.random()
            if roll < 0.35 and may_create:
                self.create()
            elif roll < 0.75 and self.alive:
                self.delete(self.rng.choice(sorted(self.alive)))
            elif roll < 0.85 and cursor is not None and cursor in self.alive:
                self.delete(cursor)  # the next page starts from a deleted object
            elif self.alive:
                target = self.rng.choice(sorted(self.alive))
                response = self.api.patch(
                    f"{self.resource.path}/{target}", json={self.other: str(self.rng.random())}
                )
                assert response.status_code == 200, response.text

    def page(self, params: dict[str, str]) -> dict[str, Any]:
        limit = str(self.rng.randint(1, 6))
        body = self.api.list(self.resource, {**params, **self.filter, "limit": limit})
        self.pages += 1
        returned = ids(body)
        assert [self.created[i] for i in returned] == sorted(
            (self.created[i] for i in returned), reverse=True
        ), "a page is newest first"
        for object_id in returned:
            assert object_id in self.matching, "only matching objects"
            assert object_id in self.alive, "never an object deleted before the page"
        assert body["total"] == len(self.matching & self.alive)
        return body


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("seed", [11, 12])
def test_walk_with_starting_after_under_writes(
    api: Caller, resource: Resource, seed: int, filtered: bool
) -> None:
    """Walking a whole list forwards with starting_after while others create, update and delete
    (the cursor object too) never repeats or skips an object that existed throughout."""
    walk = Walk(api, resource, random.Random(seed), filtered)
    for _ in range(40):
        walk.create()
    throughout = set(walk.matching)
    walked: list[str] = []
    body = walk.page({})
    walked += ids(body)
    while body["has_more"]:
        assert walk.pages < 300, "the walk must end"
        cursor = walked[-1]
        walk.interfere(cursor, may_create=True)
        throughout &= walk.alive
        body = walk.page({"starting_after": cursor})
        walked += ids(body)
        if not body["data"]:
            assert not body["has_more"]
    assert len(walked) == len(set(walked)), "an object came twice"
    assert throughout <= set(walked), "an object that existed throughout was skipped"
    ranks = [walk.created[i] for i in walked]
    assert ranks == sorted(ranks, reverse=True)
    assert walk.deleted_at, "the walk must have seen deletes"


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("seed", [21, 22])
def test_walk_with_ending_before_under_writes(
    api: Caller, resource: Resource, seed: int, filtered: bool
) -> None:
    """Walking a whole list backwards (oldest to newest) with ending_before while others write
    never repeats or skips an object that existed throughout."""
    walk = Walk(api, resource, random.Random(seed), filtered)
    anchor = walk.create()  # the oldest object: the walk starts just before it
    for _ in range(40):
        walk.create()
    throughout = walk.matching - {anchor}
    walked: list[str] = []
    cursor = anchor
    while True:
        assert walk.pages < 300, "the walk must end"
        walk.interfere(cursor, may_create=len(walk.created) < 90)
        throughout &= walk.alive
        body = walk.page({"ending_before": cursor})
        page_ids = ids(body)
        if walked and page_ids:
            assert walk.created[page_ids[-1]] > walk.created[walked[-1]], "pages move to newer"
        walked += list(reversed(page_ids))
        if not body["has_more"]:
            break
        cursor = page_ids[0]
    assert len(walked) == len(set(walked)), "an object came twice"
    assert throughout <= set(walked), "an object that existed throughout was skipped"
    assert walk.deleted_at, "the walk must have seen deletes"


def test_scheduled_time_ranges_compare_at_microsecond_precision(api: Caller) -> None:
    """Digits past the microsecond are ignored in values and bounds alike (docs/api.md)."""
    value = "2024-01-15T09:00:00.0000005Z"
    created = api.post(APPOINTMENT.path, json=valid_body(APPOINTMENT, scheduled_time=value))
    assert created.status_code == 201
    object_id = created.json()["id"]

    def ids(**params: str) -> list[str]:
        response = api.get(APPOINTMENT.path, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert ids(**{"scheduled_time[gte]": value}) == [object_id]
    assert ids(**{"scheduled_time[lte]": value}) == [object_id]
    assert ids(**{"scheduled_time[gt]": value}) == []
    assert ids(**{"scheduled_time[gte]": "2024-01-15T09:00:00Z"}) == [object_id]
    assert ids(**{"scheduled_time[gt]": "2024-01-15T09:00:00Z"}) == []
    assert ids(**{"scheduled_time[lt]": "2024-01-15T09:00:00.000001Z"}) == [object_id]
