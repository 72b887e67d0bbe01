"""What apply-live counts as replacing files of the running system (needs --allow-replacement)."""

from __future__ import annotations

from apt_ostree.engine.live import replacements
from apt_ostree.ostree.diff import TreeDiff


def test_additions_config_and_package_state_are_not_replacements() -> None:
    diff = TreeDiff(added=["/usr/bin/new", "/usr/share/doc/new"],
                    modified=["/usr/etc/new.conf", "/usr/share/dpkg/database/status",
                              "/usr/lib/apt-ostree/state/debconf/config.dat"],
                    removed=["/usr/etc/old.conf"])
    assert replacements(diff) == []


def test_changed_removed_and_retyped_files_are_replacements() -> None:
    diff = TreeDiff(added=["/usr/lib/x"], modified=["/usr/bin/tool"],
                    removed=["/usr/lib/x", "/usr/share/gone"])
    assert replacements(diff) == ["/usr/bin/tool", "/usr/lib/x", "/usr/share/gone"]
