"""The shard of an object and the fair share of each replica: pure, the same in every version."""

from __future__ import annotations

from collections import Counter

from certsmith.kube.shards import fair_share, shard_of, to_release


def test_the_shard_is_sha256_of_namespace_and_name_mod_the_count() -> None:
    """Pinned values (sha256(b"team-a/web")[:8] = 0xa6d6889313c23313): no version may move an object."""
    assert shard_of(("team-a", "web"), 2**64) == 0xA6D6889313C23313
    assert [shard_of(("team-a", "web"), count) for count in (1, 2, 6, 256)] == [0, 1, 1, 19]
    assert shard_of(("", "cluster-wide"), 6) == 0


def test_shards_spread_evenly() -> None:
    counts = Counter(shard_of(("ns", f"cert-{index}"), 6) for index in range(6000))
    assert len(counts) == 6
    assert all(900 < count < 1100 for count in counts.values())


def test_fair_share() -> None:
    assert fair_share(6, 3) == (2, 2)
    assert fair_share(6, 4) == (1, 2)
    assert fair_share(6, 0) == (6, 6)


def test_a_replica_releases_above_its_share_and_for_a_joiner() -> None:
    assert to_release(6, [6, 0, 0], 6) == 4
    assert to_release(2, [2, 2, 2], 6) == 0
    assert to_release(2, [2, 2, 2, 0], 6) == 1  # four replicas: each keeps at least one
    assert to_release(1, [1, 2, 2, 1], 6) == 0
    assert to_release(3, [3, 3], 6) == 0
