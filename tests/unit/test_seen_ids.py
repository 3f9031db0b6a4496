"""SeenIds (the join's memory of joined request ids) against plain sets of ids per bucket."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.seen_ids import _MERGE, SeenIds, _Bucket, _split


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 * _MERGE), st.floats(0, 50, allow_nan=False)),
        min_size=1,
        max_size=4 * _MERGE,
    ),
    st.integers(0, 3),
)
def test_membership_and_size_match_sets_of_ids_through_compactions_and_expiry(adds, repeats):
    """Ids added (a bucket compacts its newest hashes into its sorted array every few hundred,
    and an id may come again after that) are found, others are not, until their bucket leaves
    the time-to-live; the size counts each id once."""
    seen = SeenIds(ttl_s=24.0, max_ids=10**6)  # buckets of one second
    model: dict[int, set[str]] = {}
    for k, (number, t) in enumerate(adds):
        request_id = f"r{number}"
        if not any(request_id in ids for ids in model.values()):  # the join adds an id once
            seen.add(request_id, t)
            model.setdefault(int(t // seen.bucket_s), set()).add(request_id)
        if repeats and k % (_MERGE // repeats) == 0:
            now = t + 20.0
            seen.expire(now)
            horizon = int((now - seen.ttl_s) // seen.bucket_s)
            model = {b: ids for b, ids in model.items() if b >= horizon}
    kept = set().union(*model.values())
    probe = [f"r{i}" for i in range(3 * _MERGE + 1)]
    assert [request_id in seen for request_id in probe] == [r in kept for r in probe]
    assert seen.contains_many(probe).tolist() == [r in kept for r in probe]
    assert len(seen) == len(kept)


def test_an_id_added_again_after_its_bucket_compacted_is_kept_once():
    seen = SeenIds(ttl_s=24.0, max_ids=10**6)
    for i in range(_MERGE):  # the last add compacts the bucket
        seen.add(f"r{i}", 5.0)
    bucket = seen._buckets[5]
    assert len(bucket.sorted) == _MERGE and not bucket.recent
    seen.add("r7", 5.0)  # again (a join never does this; a hash collision looks like it)
    bucket.compact()
    assert len(bucket.sorted) == _MERGE
    assert list(bucket.sorted) == sorted(bucket.sorted)
    assert "r7" in seen and "r8" in seen and "r9999" not in seen


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 0xFFFF)), min_size=1, max_size=600),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 0xFFFF)), max_size=50),
)
def test_a_bucket_finds_its_hashes_where_many_share_their_top_bits(kept, probes):
    """A sorted bucket searches each hash's top 32 bits, then compares its low 16: hashes drawn
    from four tops (so most share theirs) are found, one by one and many at once, exactly as a
    set of them says, whole 48-bit hashes given back in order."""
    hashes = {(0xBEEF_0000 | top) << 16 | low for top, low in kept}  # 48 bits each
    bucket = _Bucket()
    for h in hashes:
        bucket.add(h)
    bucket.compact()
    assert not bucket.recent and bucket.sorted.tolist() == sorted(hashes)
    asked = [(0xBEEF_0000 | top) << 16 | low for top, low in probes] + sorted(hashes)[:20]
    assert [h in bucket for h in asked] == [h in hashes for h in asked]
    found = bucket.find(*_split(np.array(asked, dtype=np.uint64))).tolist()
    assert found == [h in hashes for h in asked]
