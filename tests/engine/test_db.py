"""Unit tests for package list queries: diffs with Debian version ordering, prefix filters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apt_ostree.apt.versions import compare_versions
from apt_ostree.engine.db import Change, PackageDiff, diff_packages, filter_prefixes
from apt_ostree.packages import Package


def P(name: str, version: str, arch: str = "amd64") -> Package:
    return Package(name, version, arch)


@pytest.mark.parametrize(("lower", "higher"), [
    ("1.0-1", "1.0-1+deb12u1"),
    ("1.9", "2:1.0"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0", "1.0+b1"),
    ("2.36-9", "2.36-9+deb12u4"),
    ("1:0.9", "2:0.1"),
    ("1.0-1", "1.0-10"),
    ("1.2", "1.10"),
])
def test_compare_versions_debian_ordering(lower: str, higher: str) -> None:
    assert compare_versions(lower, higher) < 0
    assert compare_versions(higher, lower) > 0
    assert compare_versions(lower, lower) == 0


@pytest.mark.parametrize(("a", "b"), [("1.0", "0:1.0"), ("1.0", "1.0-0"), ("1.0", "1.00")])
def test_compare_versions_equal_spellings(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


def test_diff_added_removed_upgraded_downgraded() -> None:
    old = [P("bash", "5.2-1"), P("libc6", "2.36-9"), P("gone", "1.0"), P("tzdata", "2024a", "all"),
           P("epoch", "2:1.0"), P("same", "3.0")]
    new = [P("bash", "5.2-1+deb12u1"), P("libc6", "2.36-9~bpo1"), P("fresh", "0.1"),
           P("tzdata", "2024a", "all"), P("epoch", "1.9"), P("same", "3.0")]
    diff = diff_packages(old, new, compare_versions)
    assert diff.added == [P("fresh", "0.1")]
    assert diff.removed == [P("gone", "1.0")]
    assert diff.upgraded == [Change("bash", "amd64", "5.2-1", "5.2-1+deb12u1")]
    assert diff.downgraded == [Change("epoch", "amd64", "2:1.0", "1.9"),
                               Change("libc6", "amd64", "2.36-9", "2.36-9~bpo1")]
    assert not diff.is_empty()


def test_diff_uses_debian_ordering_not_string_ordering() -> None:
    # As strings "1.0~rc1" > "1.0" and "1.10" < "1.9": Debian says the opposite.
    diff = diff_packages([P("a1", "1.0~rc1"), P("b1", "1.9")], [P("a1", "1.0"), P("b1", "1.10")],
                         compare_versions)
    assert [c.name for c in diff.upgraded] == ["a1", "b1"]
    assert diff.downgraded == []


def test_diff_keys_on_name_and_architecture() -> None:
    old = [P("libfoo", "1.0", "amd64"), P("libfoo", "1.0", "i386")]
    new = [P("libfoo", "1.1", "amd64"), P("libfoo", "1.0", "arm64")]
    diff = diff_packages(old, new, compare_versions)
    assert diff.upgraded == [Change("libfoo", "amd64", "1.0", "1.1")]
    assert diff.removed == [P("libfoo", "1.0", "i386")]
    assert diff.added == [P("libfoo", "1.0", "arm64")]


def test_diff_results_are_sorted_by_name() -> None:
    new = [P("zz", "1"), P("aa", "1"), P("mm", "1")]
    assert [p.name for p in diff_packages([], new, compare_versions).added] == ["aa", "mm", "zz"]
    assert [p.name for p in diff_packages(new, [], compare_versions).removed] == ["aa", "mm", "zz"]


def test_diff_of_equal_spellings_is_not_a_change() -> None:
    # "1.0" and "0:1.0" are the same Debian version: neither an upgrade nor a downgrade.
    diff = diff_packages([P("aa", "1.0"), P("bb", "2.0-0")], [P("aa", "0:1.0"), P("bb", "2.0")],
                         compare_versions)
    assert diff.is_empty(), diff


def test_empty_diff() -> None:
    diff = diff_packages([P("aa", "1")], [P("aa", "1")], compare_versions)
    assert diff.is_empty()
    assert diff.to_json() == {"added": [], "removed": [], "upgraded": [], "downgraded": []}


def test_to_json_shape() -> None:
    diff = PackageDiff(added=[P("new", "1.0", "all")], removed=[P("old", "2.0")],
                       upgraded=[Change("up", "amd64", "1", "2")],
                       downgraded=[Change("down", "arm64", "2", "1")])
    data = diff.to_json()
    assert data == {
        "added": [{"name": "new", "version": "1.0", "architecture": "all"}],
        "removed": [{"name": "old", "version": "2.0", "architecture": "amd64"}],
        "upgraded": [{"name": "up", "architecture": "amd64",
                      "previous-version": "1", "new-version": "2"}],
        "downgraded": [{"name": "down", "architecture": "arm64",
                        "previous-version": "2", "new-version": "1"}],
    }
    assert json.loads(json.dumps(data)) == data


def test_filter_prefixes() -> None:
    pkgs = [P("libc6", "1"), P("libssl3", "1"), P("bash", "1"), P("linux-image-amd64", "1")]
    assert filter_prefixes(pkgs, []) == pkgs
    assert filter_prefixes(pkgs, ["lib"]) == [P("libc6", "1"), P("libssl3", "1")]
    assert filter_prefixes(pkgs, ["bash", "linux-"]) == [P("bash", "1"), P("linux-image-amd64", "1")]
    assert filter_prefixes(pkgs, ["nothing"]) == []
    assert filter_prefixes(tuple(pkgs), ()) == pkgs


# ---- properties -----------------------------------------------------------------------

VERSIONS = ["1.0", "1.0-1", "1.0-1+deb12u1", "1.0~rc1", "1.9", "1.10", "2:1.0", "1:2.0~bpo1",
            "0.1+git20240101", "20240101.0"]
NAMES = st.sampled_from(["aa", "bash", "coreutils", "dpkg", "libc6", "zlib1g", "g++"])
ARCHES = st.sampled_from(["amd64", "all", "i386"])
PACKAGE_SETS = st.dictionaries(st.tuples(NAMES, ARCHES), st.sampled_from(VERSIONS), max_size=12).map(
    lambda d: [Package(n, v, a) for (n, a), v in d.items()])


def apply_diff(old: list[Package], diff: PackageDiff) -> set[Package]:
    out = {(p.name, p.architecture): p for p in old}
    for p in diff.removed:
        del out[(p.name, p.architecture)]
    for p in diff.added:
        out[(p.name, p.architecture)] = p
    for c in (*diff.upgraded, *diff.downgraded):
        assert out[(c.name, c.architecture)].version == c.old
        out[(c.name, c.architecture)] = Package(c.name, c.new, c.architecture)
    return set(out.values())


@settings(max_examples=100, deadline=None)
@given(PACKAGE_SETS, PACKAGE_SETS)
def test_applying_a_diff_yields_the_new_set(old: list[Package], new: list[Package]) -> None:
    diff = diff_packages(old, new, compare_versions)
    assert apply_diff(old, diff) == set(new)
    assert all(compare_versions(c.old, c.new) < 0 for c in diff.upgraded)
    assert all(compare_versions(c.old, c.new) > 0 for c in diff.downgraded)
    back = diff_packages(new, old, compare_versions)
    assert {p for p in back.added} == set(diff.removed)
    assert {(c.name, c.new, c.old) for c in back.upgraded} == {
        (c.name, c.old, c.new) for c in diff.downgraded}


@given(PACKAGE_SETS)
def test_diff_with_itself_is_empty(packages: list[Package]) -> None:
    assert diff_packages(packages, list(reversed(packages)), compare_versions).is_empty()
