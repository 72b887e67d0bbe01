"""The status cache is used only while the deployments are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from apt_ostree import statuscache


def _sysroot(tmp_path: Path) -> Path:
    (tmp_path / "ostree/deploy/debian/deploy").mkdir(parents=True)
    (tmp_path / "boot/loader.0").mkdir(parents=True)
    (tmp_path / "boot/loader").symlink_to("loader.0")
    return tmp_path


def test_fresh_cache_is_returned(tmp_path: Path) -> None:
    root = _sysroot(tmp_path)
    data = {"deployments": [{"id": "x", "booted": False}], "booted": None, "transaction": None}
    statuscache.store(root, data, statuscache.status_json(data), statuscache.cache_key(root))
    cached = statuscache.load(root)
    assert cached is not None and cached[0] == data
    assert '"id": "x"' in cached[1]


def test_any_deployment_change_makes_it_stale(tmp_path: Path) -> None:
    root = _sysroot(tmp_path)
    data = {"deployments": [], "booted": None, "transaction": None}
    statuscache.store(root, data, statuscache.status_json(data), statuscache.cache_key(root))
    assert statuscache.load(root) is not None
    # A new deployment directory (what libostree writes on deploy).
    (root / "ostree/deploy/debian/deploy/abc.0").mkdir()
    assert statuscache.load(root) is None
    statuscache.store(root, data, statuscache.status_json(data), statuscache.cache_key(root))
    assert statuscache.load(root) is not None
    # The boot loader swap (the atomic switch of a new boot version).
    (root / "boot/loader.1").mkdir()
    (root / "boot/loader.tmp").symlink_to("loader.1")
    os.replace(root / "boot/loader.tmp", root / "boot/loader")
    assert statuscache.load(root) is None


def test_a_key_taken_before_a_change_is_never_served(tmp_path: Path) -> None:
    root = _sysroot(tmp_path)
    key = statuscache.cache_key(root)
    (root / "ostree/deploy/debian/deploy/new.0").mkdir()  # changed while status was computed
    data = {"deployments": [], "booted": None, "transaction": None}
    statuscache.store(root, data, statuscache.status_json(data), key)
    assert statuscache.load(root) is None


def test_garbage_cache_is_ignored(tmp_path: Path) -> None:
    root = _sysroot(tmp_path)
    (root / "ostree/apt-ostree").mkdir(parents=True)
    (root / statuscache.CACHE).write_bytes(b"\x00garbage")
    assert statuscache.load(root) is None


def test_origin_edited_in_place_makes_it_stale(tmp_path: Path) -> None:
    root = _sysroot(tmp_path)
    origin = root / "ostree/deploy/debian/deploy/abc.0.origin"
    origin.write_text("[origin]\nrefspec=a:b\n")
    data = {"deployments": [], "booted": None, "transaction": None}
    statuscache.store(root, data, statuscache.status_json(data), statuscache.cache_key(root))
    assert statuscache.load(root) is not None
    st = origin.stat()
    with open(origin, "w") as f:
        f.write("[origin]\nrefspec=c:d\n")
    os.utime(origin, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert statuscache.load(root) is None
