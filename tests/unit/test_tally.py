"""Tally (a histogram's counts, a dict while it changes, packed bytes once frozen) against a
plain dict of counts."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.tally import Tally

_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 65_535), st.integers(1, 2**40)),
        st.tuples(
            st.just("many"),
            st.lists(st.tuples(st.integers(0, 900), st.integers(1, 10**6)), max_size=20),
        ),
        st.tuples(  # one-byte keys, counts of one and two bytes
            st.just("many"),
            st.lists(st.tuples(st.integers(0, 255), st.integers(1, 300)), max_size=20),
        ),
        st.tuples(st.just("freeze")),
        st.tuples(st.just("text")),  # a checkpoint and a restore
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_OPERATIONS)
def test_a_tally_counts_as_a_dict_does_frozen_or_not(operations):
    tally, model = Tally(), {}
    for operation in operations:
        if operation[0] == "add":
            _, key, n = operation
            tally.add(key, n)
            model[key] = model.get(key, 0) + n
        elif operation[0] == "many":
            tally.add_many(operation[1])
            for key, n in operation[1]:
                model[key] = model.get(key, 0) + n
        elif operation[0] == "freeze":
            tally.freeze()
        else:
            text = tally.to_text()
            tally = Tally.from_text(text)
            assert tally.to_text() == text
        assert tally.items() == sorted(model.items())
        assert bool(tally) == bool(model)
        keys, counts = tally.arrays()
        assert keys.tolist() == sorted(model)
        assert counts.tolist() == [model[k] for k in sorted(model)]


def test_the_text_is_the_same_frozen_or_not_and_small():
    """A checkpoint must not depend on when the window froze a bucket; keys and counts take
    as few bytes as their largest needs."""
    tally = Tally()
    tally.add_many((k, k + 1) for k in range(100))
    open_text = tally.to_text()
    tally.freeze()
    assert tally.to_text() == open_text
    assert len(tally._packed) == 1 + 100 * (1 + 1)  # keys and counts below 256
    for key, n, size in [(5, 300, 1 + 2), (700, 1, 2 + 2), (5, 70_000, 2 + 4), (5, 2**33, 2 + 8)]:
        tally.add(key, n)
        tally.freeze()
        assert len(tally._packed) == 1 + len(tally.items()) * size
    assert dict(tally.items())[5] == 6 + 300 + 70_000 + 2**33
    assert Tally.from_text(tally.to_text()).items() == tally.items()


def test_checkpoints_written_with_four_byte_counts_read_back():
    """Before the narrow widths every tally had 2-byte keys and 4-byte counts (header 4)."""
    old = bytes([4]) + bytes([3, 0, 9, 1]) + bytes([2, 0, 0, 0, 7, 0, 0, 0])
    assert Tally.from_text(base64.b64encode(old).decode()).items() == [(3, 2), (265, 7)]


@pytest.mark.parametrize("text", ["not base64!", "BAAB", "CQAAAA=="])
def test_text_that_is_not_a_tally_is_refused(text):
    with pytest.raises(ValueError):
        Tally.from_text(text)


def test_old_checkpoints_pairs_read_back():
    assert Tally.from_pairs([[3, 2], [1, 5]]).items() == [(1, 5), (3, 2)]
