"""The pure membership rule (clusterdb.core.membership): which nodes a new list keeps, adds,
removes and changes, and which lists are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdb.core.membership import MembershipChange, check_names, diff_nodes
from clusterdb.errors import ConfigError

# (old name -> settings, new (name, settings) pairs, added, removed, changed)
CASES: list[tuple[dict[str, object], list[tuple[str, object]], str, str, str]] = [
    ({"a": 1}, [("a", 1)], "", "", ""),
    ({"a": 1}, [("a", 1), ("b", 2)], "b", "", ""),
    ({"a": 1, "b": 2}, [("a", 1)], "", "b", ""),
    ({"a": 1, "b": 2}, [("a", 1), ("b", 3)], "", "", "b"),
    ({"a": 1, "b": 2}, [("c", 1)], "c", "a b", ""),  # same settings, new name: a new node
    ({"a": 1, "b": 2}, [("b", 2), ("a", 1)], "", "", ""),  # reordered: nothing to do
    ({"a": 1, "b": 2, "c": 3}, [("d", 4), ("b", 5), ("a", 1)], "d", "c", "b"),
    ({"a": ("x", 1)}, [("a", ("x", 2))], "", "", "a"),  # settings compared whole
]


@pytest.mark.parametrize(("old", "new", "added", "removed", "changed"), CASES)
def test_the_diff_rule(
    old: dict[str, object],
    new: list[tuple[str, object]],
    added: str,
    removed: str,
    changed: str,
) -> None:
    change = diff_nodes(old, new)
    assert change == MembershipChange(
        tuple(added.split()), tuple(removed.split()), tuple(changed.split())
    )
    assert bool(change) == bool(added or removed or changed)
    assert change.retired == change.removed + change.changed
    assert change.fresh == change.added + change.changed


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 2)),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 2), min_size=1),
)
def test_every_name_is_kept_added_removed_or_changed_once(
    old: dict[str, int], new: dict[str, int]
) -> None:
    change = diff_nodes(old, list(new.items()))
    kept = [n for n in new if n in old and old[n] == new[n]]
    every = [*kept, *change.added, *change.removed, *change.changed]
    assert sorted(every) == sorted(set(old) | set(new))
    assert all(old[n] == new[n] for n in kept)


REFUSED = [
    ([], "would have no node left", "clusters.c.nodes"),
    (["a", "b", "a"], "duplicate node name 'a', also used by clusters.c.nodes[0]", "[2].name"),
    (["a", " "], "a node needs a non-empty name", "[1].name"),
]


@pytest.mark.parametrize(("names", "message", "path"), REFUSED)
def test_lists_refused(names: list[str], message: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_names("c", names)
    assert message in str(caught.value)
    assert caught.value.path.endswith(path)


def test_a_list_of_distinct_names_passes() -> None:
    check_names("c", ["a", "b"])
