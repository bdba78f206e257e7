"""Sequence-gap detection (pure part): range subtraction and the contiguous watermark."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ingest.gaps import Hole, find_gaps, subtract_ranges

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLD = T0 - timedelta(minutes=5)
NEW = T0 + timedelta(minutes=5)


def test_subtract_ranges_examples() -> None:
    assert subtract_ranges(1, 10, []) == [(1, 10)]
    assert subtract_ranges(1, 10, [(1, 10)]) == []
    assert subtract_ranges(1, 10, [(0, 20)]) == []
    assert subtract_ranges(1, 10, [(4, 6)]) == [(1, 3), (7, 10)]
    assert subtract_ranges(1, 10, [(1, 1)]) == [(2, 10)]
    assert subtract_ranges(1, 10, [(10, 10)]) == [(1, 9)]
    assert subtract_ranges(1, 10, [(11, 20), (-5, 0)]) == [(1, 10)]
    assert subtract_ranges(1, 10, [(8, 9), (2, 3), (5, 5)]) == [(1, 1), (4, 4), (6, 7), (10, 10)]
    assert subtract_ranges(1, 10, [(2, 6), (4, 8)]) == [(1, 1), (9, 10)], "overlapping covers"
    assert subtract_ranges(5, 5, [(5, 5)]) == []


@settings(max_examples=300, deadline=None)
@given(
    first=st.integers(1, 60),
    width=st.integers(0, 40),
    covered=st.lists(st.tuples(st.integers(-5, 110), st.integers(0, 20)), max_size=6),
)
def test_subtract_ranges_is_set_difference(
    first: int, width: int, covered: list[tuple[int, int]]
) -> None:
    last = first + width
    cover = [(a, a + w) for a, w in covered]
    parts = subtract_ranges(first, last, cover)
    expected = set(range(first, last + 1)) - {s for a, b in cover for s in range(a, b + 1)}
    got = [s for a, b in parts for s in range(a, b + 1)]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    assert all(a <= b for a, b in parts)
    assert parts == sorted(parts)
    for (_, b1), (a2, _) in itertools.pairwise(parts):
        assert a2 > b1 + 1, "maximal parts: never adjacent"


def test_no_holes_moves_the_watermark_to_max_seq() -> None:
    scan = find_gaps(contiguous_to=10, holes=[], dead_lettered=[], max_seq=25, grace_cutoff=T0)
    assert (scan.contiguous_to, scan.gaps) == (25, ())


def test_watermark_never_moves_back() -> None:
    scan = find_gaps(contiguous_to=30, holes=[], dead_lettered=[], max_seq=25, grace_cutoff=T0)
    assert scan.contiguous_to == 30


def test_watermark_stops_before_the_first_hole() -> None:
    holes = [Hole(14, 15, OLD), Hole(11, 12, OLD)]  # given out of order
    scan = find_gaps(contiguous_to=10, holes=holes, dead_lettered=[], max_seq=20, grace_cutoff=T0)
    assert scan.contiguous_to == 10
    assert scan.gaps == ((11, 12), (14, 15))

    scan = find_gaps(
        contiguous_to=10, holes=[Hole(16, 18, OLD)], dead_lettered=[], max_seq=20, grace_cutoff=T0
    )
    assert scan.contiguous_to == 15 and scan.gaps == ((16, 18),)


def test_dead_lettered_ranges_count_as_covered() -> None:
    holes = [Hole(11, 15, OLD), Hole(18, 18, OLD)]
    whole = find_gaps(
        contiguous_to=10,
        holes=holes,
        dead_lettered=[(11, 15), (18, 18)],
        max_seq=30,
        grace_cutoff=T0,
    )
    assert whole.contiguous_to == 30 and whole.gaps == (), "refused readings are not chased"

    part = find_gaps(
        contiguous_to=10, holes=holes, dead_lettered=[(9, 12)], max_seq=30, grace_cutoff=T0
    )
    assert part.contiguous_to == 12
    assert part.gaps == ((13, 15), (18, 18))

    middle = find_gaps(
        contiguous_to=10, holes=holes, dead_lettered=[(13, 13)], max_seq=30, grace_cutoff=T0
    )
    assert middle.contiguous_to == 10
    assert middle.gaps == ((11, 12), (14, 15), (18, 18))


def test_young_holes_wait_for_the_grace_period_but_hold_the_watermark() -> None:
    holes = [Hole(11, 12, NEW), Hole(20, 21, OLD)]
    scan = find_gaps(contiguous_to=10, holes=holes, dead_lettered=[], max_seq=30, grace_cutoff=T0)
    assert scan.contiguous_to == 10, "a reordered reading may still arrive: not contiguous yet"
    assert scan.gaps == ((20, 21),), "only the hole older than the grace period is chased"

    at_cutoff = find_gaps(
        contiguous_to=10, holes=[Hole(11, 12, T0)], dead_lettered=[], max_seq=30, grace_cutoff=T0
    )
    assert at_cutoff.gaps == ((11, 12),)


@st.composite
def scans(
    draw: st.DrawFn,
) -> tuple[int, int, set[int], dict[int, datetime], list[tuple[int, int]], datetime]:
    """A vehicle's state above its watermark: what was received, when, and what was refused."""
    contiguous_to = draw(st.integers(0, 30))
    max_seq = contiguous_to + draw(st.integers(0, 40))
    received = set(draw(st.sets(st.integers(contiguous_to + 1, max(contiguous_to + 1, max_seq)))))
    received = {s for s in received if s <= max_seq}
    if max_seq > contiguous_to:
        received.add(max_seq)  # max_seq is the highest stored seq
    arrived = {s: T0 + timedelta(seconds=draw(st.integers(-120, 120))) for s in received}
    dead = [
        (a, a + w)
        for a, w in draw(
            st.lists(
                st.tuples(st.integers(max(1, contiguous_to - 5), max_seq + 5), st.integers(0, 6))
            )
        )
    ]
    cutoff = T0 + timedelta(seconds=draw(st.integers(-120, 120)))
    return contiguous_to, max_seq, received, arrived, dead, cutoff


def holes_of(contiguous_to: int, received: set[int], arrived: dict[int, datetime]) -> list[Hole]:
    """What `scan_vehicle_gaps`' SQL finds: runs of missing seqs before each received one."""
    holes, prev = [], contiguous_to
    for s in sorted(received):
        if s > prev + 1:
            holes.append(Hole(prev + 1, s - 1, arrived[s]))
        prev = s
    return holes


@settings(max_examples=400, deadline=None)
@given(scans())
def test_find_gaps_properties(
    state: tuple[int, int, set[int], dict[int, datetime], list[tuple[int, int]], datetime],
) -> None:
    contiguous_to, max_seq, received, arrived, dead, cutoff = state
    holes = holes_of(contiguous_to, received, arrived)
    scan = find_gaps(
        contiguous_to=contiguous_to,
        holes=holes,
        dead_lettered=dead,
        max_seq=max_seq,
        grace_cutoff=cutoff,
    )
    dead_seqs = {s for a, b in dead for s in range(a, b + 1)}
    accounted = received | dead_seqs

    # The watermark never decreases and never passes a seq that is neither stored nor refused.
    assert scan.contiguous_to >= contiguous_to
    assert all(s in accounted for s in range(contiguous_to + 1, scan.contiguous_to + 1))
    # ...and it goes as far as it can.
    if scan.contiguous_to < max_seq:
        assert scan.contiguous_to + 1 not in accounted
    else:
        assert scan.contiguous_to == max(contiguous_to, max_seq)

    gap_seqs = [s for a, b in scan.gaps for s in range(a, b + 1)]
    assert len(gap_seqs) == len(set(gap_seqs)), "gaps do not overlap"
    assert list(scan.gaps) == sorted(scan.gaps)
    assert not set(gap_seqs) & dead_seqs, "dead-lettered readings are never chased"
    assert not set(gap_seqs) & received
    assert all(contiguous_to < s <= max_seq for s in gap_seqs), "gaps inside (watermark, max]"
    # Exactly the missing seqs whose next reading arrived before the grace cutoff are chased.
    old_missing = {
        s
        for h in holes
        if h.next_received_at <= cutoff
        for s in range(h.first, h.last + 1)
        if s not in dead_seqs
    }
    assert set(gap_seqs) == old_missing
