"""Fixtures shared by every test tier.

- capability probes: tests marked ``root`` skip unless root, mmdebstrap,
  ostree and a working bubblewrap are here; ``network`` tests skip unless
  one of this machine's apt sources answers;
- real tiny .debs (``dpkg-deb --build``) served as flat apt repositories;
- one shared compose cache (package lists and .debs) that survives between runs;
- ``base_tree``: one composed commit (minbase + the test packages), for every
  test that needs a real tree to inspect or deploy;
- ``layer_tree``: one composed tree (minbase + a text kernel + base test
  packages) with the layering test repository in its sources, shared by the
  layering and daemon tests (packages: tests/layer/lib.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from layer.lib import BASE_PACKAGES as LAYER_BASE_PACKAGES
from layer.lib import LAYER_PACKAGES
from layer.lib import REF as LAYER_REF
from testlib import packages
from testlib.compose import REPRO_EPOCH, ComposedTree, compose_deployable, compose_ok
from testlib.debs import DebSpec, FlatRepo, build_flat_repo
from testlib.tools import OstreeCli, Treefile, probe_network, probe_root, write_treefile
from testlib.trees import base_treefile_data

TEST_CACHE = Path(os.environ.get("APT_OSTREE_TEST_CACHE", "/var/cache/apt-ostree/test-cache"))

_probes: dict[str, str | None] = {}


def _probe(name: str, probe: Callable[[], str | None]) -> str | None:
    if name not in _probes:
        _probes[name] = probe()
    return _probes[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        why = _probe("root", probe_root)
        if why:
            pytest.skip(f"root tier: {why}")
    if item.get_closest_marker("network") is not None:
        why = _probe("network", probe_network)
        if why:
            pytest.skip(f"network tier: {why}")


@pytest.fixture(scope="session")
def compose_cachedir() -> Path:
    """Package lists and downloaded .debs, shared by every compose and kept between runs."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return TEST_CACHE


@pytest.fixture(scope="session")
def make_apt_repo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Iterable[DebSpec]], FlatRepo]:
    """Factory: build packages into a new flat apt repository named ``name``."""
    top = tmp_path_factory.mktemp("apt-repos")

    def make(name: str, specs: Iterable[DebSpec]) -> FlatRepo:
        return build_flat_repo(top / name, specs, top / f".build-{name}")

    return make


@pytest.fixture(scope="session")
def test_apt_repo(make_apt_repo: Callable[[str, Iterable[DebSpec]], FlatRepo]) -> FlatRepo:
    """aot-lib, aot-app 1.0, aot-extra and aot-broken (see testlib.packages)."""
    return make_apt_repo("base", packages.BASE_PACKAGES)


@pytest.fixture(scope="session")
def test_apt_repo_update(make_apt_repo: Callable[[str, Iterable[DebSpec]], FlatRepo]) -> FlatRepo:
    """aot-app 2.0."""
    return make_apt_repo("update", packages.UPDATE_PACKAGES)


@pytest.fixture(scope="session")
def base_treefile(tmp_path_factory: pytest.TempPathFactory, test_apt_repo: FlatRepo) -> Treefile:
    top = tmp_path_factory.mktemp("base-treefile")
    return write_treefile(top / "base.yaml", base_treefile_data(top / "files"),
                          extra_sources=[test_apt_repo.source_line()])


@pytest.fixture(scope="session")
def base_tree(tmp_path_factory: pytest.TempPathFactory, base_treefile: Treefile,
              compose_cachedir: Path) -> ComposedTree:
    """One real compose of the base treefile (reproducible: SOURCE_DATE_EPOCH is set).

    Tests must not move its ref; compose into another repository to change it.
    """
    top = tmp_path_factory.mktemp("base-tree")
    return compose_ok(base_treefile, top / "repo", compose_cachedir, top / "work",
                      extra_args=["--add-metadata-string", "aot.extra=from the command line"],
                      env={"SOURCE_DATE_EPOCH": REPRO_EPOCH})


@pytest.fixture(scope="session")
def base_checkout(tmp_path_factory: pytest.TempPathFactory, base_tree: ComposedTree) -> Iterator[Path]:
    """A plain (user-mode) checkout of ``base_tree``'s commit."""
    dest = tmp_path_factory.mktemp("base-checkout") / "tree"
    yield OstreeCli(base_tree.repo).checkout(base_tree.commit, dest)


@pytest.fixture(scope="session")
def layer_repo(make_apt_repo: Callable[[str, Iterable[DebSpec]], FlatRepo]) -> FlatRepo:
    return make_apt_repo("layering", LAYER_PACKAGES)


@pytest.fixture(scope="session")
def layer_tree(tmp_path_factory: pytest.TempPathFactory, layer_repo: FlatRepo,
               compose_cachedir: Path) -> ComposedTree:
    return compose_deployable(tmp_path_factory.mktemp("layer-tree"), LAYER_REF, LAYER_BASE_PACKAGES,
                              [layer_repo.source_line()], compose_cachedir)
