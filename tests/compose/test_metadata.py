"""Unit tests for commit metadata (input hash, versions, package lists) and lockfiles."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gi.repository import GLib

from apt_ostree.compose.lockfile import lockfile_json, read_lockfile, write_lockfile
from apt_ostree.compose.metadata import (
    INPUTHASH_KEY,
    PACKAGES_KEY,
    build_timestamp,
    commit_metadata,
    input_hash,
    next_version,
    packages_from_metadata,
    packages_variant,
)
from apt_ostree.compose.treefile import Treefile, load_treefile
from apt_ostree.errors import LockfileError
from apt_ostree.packages import Package

SOURCE = "deb http://deb.debian.org/debian bookworm main"
PKGS = [
    Package("bash", "5.2.15-2+b2", "amd64"),
    Package("base-files", "12.4+deb12u5", "amd64"),
    Package("tzdata", "2024a-0+deb12u1", "all"),
]


def treefile(tmp_path: Path, extra: str = "") -> Treefile:
    path = tmp_path / "t.yaml"
    path.write_text(f"ref: debian/test\nsuite: bookworm\nsources: ['{SOURCE}']\n{extra}")
    return load_treefile(path)


def ts(year: int, month: int, day: int, hour: int = 12) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


# ---- input_hash ----------------------------------------------------------------------


def test_input_hash_is_a_sha256(tmp_path: Path) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", input_hash(treefile(tmp_path), PKGS))


def test_input_hash_ignores_package_order(tmp_path: Path) -> None:
    tf = treefile(tmp_path)
    assert input_hash(tf, PKGS) == input_hash(tf, list(reversed(PKGS)))
    assert input_hash(tf, PKGS) == input_hash(tf, iter(sorted(PKGS)))


def test_input_hash_changes_with_a_version(tmp_path: Path) -> None:
    tf = treefile(tmp_path)
    bumped = [*PKGS[:2], Package("tzdata", "2024b-0+deb12u1", "all")]
    assert input_hash(tf, PKGS) != input_hash(tf, bumped)
    assert input_hash(tf, PKGS) != input_hash(tf, PKGS[:2])
    other_arch = [*PKGS[:2], Package("tzdata", "2024a-0+deb12u1", "amd64")]
    assert input_hash(tf, PKGS) != input_hash(tf, other_arch)


def test_input_hash_changes_with_the_treefile(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base = input_hash(treefile(tmp_path / "a"), PKGS)
    assert base == input_hash(treefile(tmp_path / "b"), PKGS)  # same content elsewhere
    assert base != input_hash(treefile(tmp_path / "b", "packages: [vim]\n"), PKGS)
    assert base != input_hash(treefile(tmp_path / "b", "metadata: {a: b}\n"), PKGS)


def test_input_hash_follows_add_files_content(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("one\n")
    tf = treefile(tmp_path, "add-files: [[motd, /etc/motd]]\n")
    first = input_hash(tf, PKGS)
    (tmp_path / "motd").write_text("two\n")
    assert input_hash(tf, PKGS) != first


# ---- next_version -----------------------------------------------------------------------


def test_next_version_first_of_the_day() -> None:
    assert next_version(None, ts(2024, 3, 5)) == "20240305.0"


def test_next_version_increments_within_a_day() -> None:
    assert next_version("20240305.0", ts(2024, 3, 5)) == "20240305.1"
    assert next_version("20240305.9", ts(2024, 3, 5, 23)) == "20240305.10"


def test_next_version_resets_on_a_new_day() -> None:
    assert next_version("20240305.4", ts(2024, 3, 6)) == "20240306.0"


@pytest.mark.parametrize("previous", ["", "1.0", "20240305", "20240305.x", "20240305.1.2",
                                      "x20240305.3", "202403051.2"])
def test_next_version_ignores_other_previous_versions(previous: str) -> None:
    assert next_version(previous, ts(2024, 3, 5)) == "20240305.0"


def test_next_version_uses_utc() -> None:
    # 23:30 UTC on the 5th is already the 6th east of Greenwich: the day is UTC's.
    late = int(datetime(2024, 3, 5, 23, 30, tzinfo=UTC).timestamp())
    assert next_version(None, late) == "20240305.0"


# ---- build_timestamp ---------------------------------------------------------------------


def test_build_timestamp_honours_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build_timestamp() == 1700000000


@pytest.mark.parametrize("value", [None, "", "not-a-number", "-5"])
def test_build_timestamp_falls_back_to_now(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    now = int(datetime.now(tz=UTC).timestamp())
    assert abs(build_timestamp() - now) <= 5


# ---- package lists in metadata --------------------------------------------------------------


def test_packages_variant_round_trip() -> None:
    variant = packages_variant(reversed(PKGS))
    assert variant.get_type_string() == "a(sss)"
    # Unpacked as when read back from a commit's metadata.
    metadata = {PACKAGES_KEY: variant.unpack()}
    assert packages_from_metadata(metadata) == sorted(PKGS)


def test_packages_variant_survives_serialisation() -> None:
    blob = packages_variant(PKGS).get_data_as_bytes()
    again = GLib.Variant.new_from_bytes(GLib.VariantType.new("a(sss)"), blob, False)
    assert packages_from_metadata({PACKAGES_KEY: again.unpack()}) == sorted(PKGS)


def test_packages_from_metadata_without_list() -> None:
    assert packages_from_metadata({}) == []


def test_commit_metadata(tmp_path: Path) -> None:
    tf = treefile(tmp_path, "metadata: {vendor: example, version: from-treefile}\n")
    meta = commit_metadata(tf, PKGS, version="20240305.0", inputhash="abc",
                           extra={"vendor": "override"})
    assert meta["version"] == "20240305.0"  # the computed version wins
    assert meta["vendor"] == "override"
    assert meta[INPUTHASH_KEY] == "abc"
    assert packages_from_metadata({PACKAGES_KEY: meta[PACKAGES_KEY].unpack()}) == sorted(PKGS)
    assert json.loads(meta["apt-ostree.treefile"]) == tf.hash_input()


# ---- lockfiles -----------------------------------------------------------------------------


def test_lockfile_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lockfile(path, reversed(PKGS))
    assert read_lockfile(path) == tuple(sorted(PKGS))
    assert not (tmp_path / "lock.json.tmp").exists()
    data = json.loads(path.read_text())
    assert data == {"packages": {p.name: {"version": p.version, "architecture": p.architecture}
                                 for p in PKGS}}


def test_lockfile_json_is_stable() -> None:
    assert lockfile_json(PKGS) == lockfile_json(reversed(PKGS))
    assert lockfile_json(PKGS).endswith("}\n")


def test_lockfile_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lockfile(path, PKGS)
    write_lockfile(path, PKGS[:1])
    assert read_lockfile(path) == (PKGS[0],)


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "invalid JSON"),
    ("", "invalid JSON"),
    ("[]", "expected an object with a 'packages' mapping"),
    ("{}", "expected an object with a 'packages' mapping"),
    ('{"packages": []}', "expected an object with a 'packages' mapping"),
    ('{"packages": {"bash": {"version": "5.2"}}}', "packages.bash: expected version and architecture"),
    ('{"packages": {"bash": {"architecture": "amd64"}}}', "packages.bash: expected version and architecture"),
    ('{"packages": {"bash": {"version": 5, "architecture": "amd64"}}}',
     "packages.bash: expected version and architecture"),
    ('{"packages": {"bash": "5.2"}}', "packages.bash: expected version and architecture"),
])
def test_bad_lockfile(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "lock.json"
    path.write_text(content)
    with pytest.raises(LockfileError) as info:
        read_lockfile(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text('{\n  "packages": {\n    "bash": ,\n  }\n}\n')
    with pytest.raises(LockfileError) as info:
        read_lockfile(path)
    assert "(line 3)" in str(info.value)


def test_missing_lockfile(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(LockfileError) as info:
        read_lockfile(path)
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_binary_lockfile_is_a_lockfile_error(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LockfileError) as info:
        read_lockfile(path)
    assert str(path) in str(info.value)
