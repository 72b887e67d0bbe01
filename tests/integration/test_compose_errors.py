"""Bad input to ``compose tree``: one clear error, exit 1, the ref unmoved, the repo fsck clean.

Each test composes into a repository whose ref already holds a (tiny) commit,
so "unmoved" is checked against a real previous commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from testlib.compose import ComposedTree, compose_tree
from testlib.debs import FlatRepo
from testlib.tools import OstreeCli, Treefile, assert_one_error, run_cli, write_treefile

pytestmark = [pytest.mark.root]

REF = "debian/bookworm/x86_64/aot-bad"


@dataclass(frozen=True)
class SeededRepo:
    path: Path
    ostree: OstreeCli
    commit: str
    workdir: Path

    def assert_untouched(self) -> None:
        assert self.ostree.refs() == [REF]
        assert self.ostree.rev_parse(REF) == self.commit
        self.ostree.fsck()
        # The failed compose cleaned up after itself.
        assert list(self.workdir.iterdir()) == []


@pytest.fixture
def seeded(tmp_path: Path) -> SeededRepo:
    repo = tmp_path / "repo"
    ostree = OstreeCli(repo)
    ostree("init", "--mode=archive")
    tree = tmp_path / "previous"
    (tree / "usr/share").mkdir(parents=True)
    (tree / "usr/share/previous").write_text("the previous commit\n")
    ostree("commit", f"--branch={REF}", f"--tree=dir={tree}", "--subject=previous")
    work = tmp_path / "work"
    work.mkdir()
    commit = ostree.rev_parse(REF)
    assert commit
    return SeededRepo(repo, ostree, commit, work)


@pytest.fixture
def compose_fails(seeded: SeededRepo, compose_cachedir: Path) -> Callable[..., str]:
    """Compose ``treefile`` into the seeded repo; assert the error contract; return the message."""

    def run(treefile: Treefile, *needles: str, args: Sequence[str] = ()) -> str:
        proc = compose_tree(treefile, seeded.path, compose_cachedir, "--workdir", seeded.workdir, *args)
        message = assert_one_error(proc, *needles)
        seeded.assert_untouched()
        return message

    return run


def bad_treefile(tmp_path: Path, repo: FlatRepo | None, *, extra: Sequence[str] = (),
                 **keys: object) -> Treefile:
    data: dict[str, object] = {"ref": REF, **{k.replace("_", "-"): v for k, v in keys.items()}}
    sources = [repo.source_line()] if repo else []
    return write_treefile(tmp_path / "bad.yaml", data, extra_sources=[*sources, *extra])


# ---- the treefile itself (no archive needed) -----------------------------------------------


def test_malformed_yaml(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"ref: {REF}\npackages: [aot-app\n")
    message = compose_fails(Treefile(path, {"ref": REF}), str(path), "invalid YAML")
    assert "line " in message


def test_unknown_key(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    path = tmp_path / "unknown.yaml"
    path.write_text(f"ref: {REF}\npackages: [aot-app]\npackage-list: [oops]\n")
    compose_fails(Treefile(path, {"ref": REF}), "package-list", "unknown key")


def test_every_problem_at_once(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    path = tmp_path / "several.yaml"
    path.write_text("packages: not-a-list\nunits: [nonsense]\nbogus: 1\n")
    message = compose_fails(Treefile(path, {}), "ref: required", "packages: expected a list",
                            "units[0]", "bogus: unknown key")
    assert "4 problems" in message


def test_missing_treefile(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    compose_fails(Treefile(tmp_path / "nope.yaml", {}), "nope.yaml", "cannot read")


@pytest.mark.parametrize("option", ["--write-lockfile-to", "--write-commitid-to"])
def test_output_file_in_a_missing_directory(tmp_path: Path, seeded: SeededRepo, compose_cachedir: Path,
                                            option: str) -> None:
    """Refused before any work (exit 2, a usage error), not with a traceback after it."""
    tf = bad_treefile(tmp_path, None, packages=["aot-app"])
    proc = compose_tree(tf, seeded.path, compose_cachedir, option, tmp_path / "missing/out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{option}: {tmp_path / 'missing'}: no such directory" in proc.stderr
    seeded.assert_untouched()


# ---- resolving against a real archive ------------------------------------------------------


@pytest.mark.network
def test_unknown_package(tmp_path: Path, test_apt_repo: FlatRepo,
                         compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, test_apt_repo, packages=["aot-app", "aot-no-such-package"])
    message = compose_fails(tf, "aot-no-such-package", "not found")
    assert "aot-app" not in message.split("not found", 1)[1]


@pytest.mark.network
@pytest.mark.parametrize(("package", "why"), [
    ("aot-broken", "aot-broken depends on aot-missing-dependency, which is not available"),
    ("aot-chain", "aot-broken depends on aot-missing-dependency, which is not available"),
    ("aot-needs-new-lib", "aot-needs-new-lib depends on aot-lib (>= 5.0), which is not available"),
])
def test_unsatisfiable_dependency(tmp_path: Path, test_apt_repo: FlatRepo,
                                  compose_fails: Callable[..., str], package: str, why: str) -> None:
    tf = bad_treefile(tmp_path, test_apt_repo, packages=["aot-app", package])
    compose_fails(tf, why)


@pytest.mark.network
def test_excluded_package_needed(tmp_path: Path, test_apt_repo: FlatRepo,
                                 compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, test_apt_repo, packages=["aot-app"], exclude_packages=["aot-lib"])
    compose_fails(tf, "aot-lib")


@pytest.mark.network
def test_unreachable_source(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, None, extra=["deb http://127.0.0.1:9/ nowhere main"])
    message = compose_fails(tf, "127.0.0.1:9", "Could not connect")
    assert ":1 " not in message  # apt's "Err:1" numbering is noise


@pytest.mark.network
def test_unsigned_source(tmp_path: Path, test_apt_repo: FlatRepo,
                         compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, None, extra=[test_apt_repo.source_line(trusted=False)],
                      packages=["aot-app"])
    message = compose_fails(tf, str(test_apt_repo.path))
    assert "not signed" in message or "NO_PUBKEY" in message or "signature" in message


@pytest.mark.network
def test_lockfile_version_that_does_not_exist(tmp_path: Path, test_apt_repo: FlatRepo,
                                              compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, test_apt_repo, packages=["aot-app"])
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({"packages": {
        "aot-app": {"version": "9.9", "architecture": "all"},
        "aot-lib": {"version": "1.0", "architecture": "all"},
    }}))
    compose_fails(tf, "aot-app", "9.9", args=["--lockfile", str(lock)])


def test_unreadable_lockfile(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, None, packages=["aot-app"])
    lock = tmp_path / "lock.json"
    lock.write_text("{not json")
    compose_fails(tf, str(lock), "invalid JSON", args=["--lockfile", str(lock)])


@pytest.mark.network
def test_failing_postprocess_script(tmp_path: Path, compose_fails: Callable[..., str]) -> None:
    # The smallest variant: the script fails after a real build all the same.
    tf = bad_treefile(tmp_path, None, variant="essential", postprocess=[
        "echo fine > /usr/share/first-script",
        "echo 'about to fail: marker-7f3a' >&2; ls /no/such/path || true; exit 3",
    ])
    message = compose_fails(tf, "postprocess[1]", "exit status 3", "marker-7f3a", "/no/such/path")
    assert len(message) < 4000


@pytest.mark.network
def test_failing_maintainer_script(tmp_path: Path, test_apt_repo: FlatRepo,
                                   compose_fails: Callable[..., str]) -> None:
    tf = bad_treefile(tmp_path, test_apt_repo, variant="essential", packages=["aot-failing-postinst"])
    message = compose_fails(tf, "maintainer script", "marker-91", "aot-failing-postinst",
                            "exit status 7")
    # dpkg's story, not apt's command line with every package on it.
    assert len(message) < 2000, message


# ---- the granular steps on something that is not a prepared tree ---------------------------


def test_postprocess_of_a_missing_tree(tmp_path: Path) -> None:
    assert_one_error(run_cli("compose", "postprocess", tmp_path / "nothing"), "not a root filesystem")


def test_commit_of_a_missing_tree(tmp_path: Path) -> None:
    tf = bad_treefile(tmp_path, None)
    proc = run_cli("compose", "commit", tf.path, tmp_path / "nothing", "--repo", tmp_path / "repo")
    assert_one_error(proc, "no such directory")
    assert not (tmp_path / "repo").exists() or OstreeCli(tmp_path / "repo").refs() == []


# ---- a failure after a successful compose leaves the previous commit alone -----------------


@pytest.mark.network
def test_failure_keeps_a_composed_ref(base_tree: ComposedTree, compose_cachedir: Path,
                                      tmp_path: Path) -> None:
    data = dict(base_tree.treefile.data)
    data["packages"] = ["aot-app", "aot-no-such-package"]
    # Next to the base treefile: its add-files are relative to it.
    tf = write_treefile(base_tree.treefile.path.with_name("base-broken.yaml"), data)
    proc = compose_tree(tf, base_tree.repo, compose_cachedir, "--workdir", tmp_path / "work")
    assert_one_error(proc, "aot-no-such-package")
    assert base_tree.ostree.rev_parse(base_tree.ref) == base_tree.commit
