"""Unit tests for the treefile model: loading, includes, validation, host sources."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from apt_ostree.compose.treefile import (
    AddFile,
    Treefile,
    Variant,
    host_sources,
    load_treefile,
)
from apt_ostree.errors import TreefileError

SOURCE = "deb http://deb.debian.org/debian bookworm main"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(TreefileError) as info:
        load_treefile(path)
    return info.value.problems


# ---- host_sources ------------------------------------------------------------


def test_host_sources_reads_list_and_deb822_files(tmp_path: Path) -> None:
    etc_apt = tmp_path / "etc/apt"
    write(etc_apt / "sources.list", """\
        # the main archive
        deb http://deb.debian.org/debian bookworm main

          # indented comment
        deb-src http://deb.debian.org/debian bookworm main
        """)
    write(etc_apt / "sources.list.d/a-extra.list", "deb http://example.org/extra bookworm main\n")
    write(etc_apt / "sources.list.d/b-debian.sources", """\
        # Modernized from /etc/apt/sources.list
        Types: deb
        URIs: http://deb.debian.org/debian
        # comment inside a stanza
        Suites: bookworm bookworm-updates
        Components: main

        Types: deb
        URIs: http://security.debian.org/debian-security
        Suites: bookworm-security
        Components: main
        Enabled: no

        Types: deb
        URIs: http://example.org/third
        Suites: bookworm
        Components: contrib
        """)
    # Not an apt source file: ignored.
    write(etc_apt / "sources.list.d/old.list.disabled", "deb http://example.org/disabled x main\n")

    assert host_sources(etc_apt) == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb-src http://deb.debian.org/debian bookworm main",
        "deb http://example.org/extra bookworm main",
        "Types: deb\nURIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main",
        "Types: deb\nURIs: http://example.org/third\nSuites: bookworm\nComponents: contrib",
    ]


def test_host_sources_disabled_stanza_is_case_insensitive(tmp_path: Path) -> None:
    etc_apt = tmp_path / "apt"
    write(etc_apt / "sources.list.d/x.sources", """\
        Types: deb
        URIs: http://example.org/a
        Suites: bookworm
        Components: main
        Enabled: No
        """)
    assert host_sources(etc_apt) == []


def test_host_sources_empty_or_missing_dir(tmp_path: Path) -> None:
    assert host_sources(tmp_path / "nonexistent") == []
    (tmp_path / "apt/sources.list.d").mkdir(parents=True)
    assert host_sources(tmp_path / "apt") == []


# ---- minimal treefiles ---------------------------------------------------------


def test_minimal_treefile_defaults(tmp_path: Path) -> None:
    tf = load_treefile(write(tmp_path / "t.yaml", f"ref: debian/12/x86_64/base\nsources: ['{SOURCE}']\n"))
    assert isinstance(tf, Treefile)
    assert tf.ref == "debian/12/x86_64/base"
    assert tf.sources == (SOURCE,)
    assert tf.variant is Variant.MINBASE
    assert tf.packages == ()
    assert tf.add_files == ()
    assert tf.includes == ()
    assert tf.path == (tmp_path / "t.yaml").resolve()


def test_ref_only_uses_host_sources(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", "ref: debian/base\n")
    if not host_sources():
        assert problems_of(path) == ["sources: none given and this machine has no apt sources"]
        return
    tf = load_treefile(path)
    assert tf.ref == "debian/base"
    assert list(tf.sources) == host_sources()


def test_treefile_is_frozen(tmp_path: Path) -> None:
    tf = load_treefile(write(tmp_path / "t.yaml", f"ref: r\nsources: ['{SOURCE}']\n"))
    with pytest.raises(AttributeError):
        tf.ref = "other"  # type: ignore[misc]


def test_full_treefile(tmp_path: Path) -> None:
    write(tmp_path / "files/motd", "hello\n")
    tf = load_treefile(write(tmp_path / "t.yaml", f"""\
        ref: debian/12/x86_64/full
        version: 12
        suite: bookworm
        variant: standard
        sources:
          - {SOURCE}
          - Types: deb
            URIs: http://example.org/debian
            Suites: [bookworm, bookworm-updates]
            Components: main
        packages: [linux-image-amd64, systemd, libc6:amd64, g++]
        exclude-packages: [nano]
        add-files:
          - [files/motd, /etc/motd]
        remove-files: [/usr/share/doc/*]
        postprocess: ["echo hi"]
        units: [ssh.service, getty@tty1.service, fstrim.timer]
        default-target: multi-user.target
        metadata:
          vendor: example
          build: 3
          devel: true
        """))
    assert tf.version == "12"
    assert tf.suite == "bookworm"
    assert tf.variant is Variant.STANDARD
    assert tf.sources == (
        SOURCE,
        "Types: deb\nURIs: http://example.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main",
    )
    assert tf.packages == ("linux-image-amd64", "systemd", "libc6:amd64", "g++")
    assert tf.exclude_packages == ("nano",)
    assert tf.add_files == (AddFile((tmp_path / "files/motd").resolve(), "/etc/motd"),)
    assert tf.units == ("ssh.service", "getty@tty1.service", "fstrim.timer")
    assert tf.default_target == "multi-user.target"
    assert dict(tf.metadata) == {"vendor": "example", "build": 3, "devel": True}


def test_variant_priorities() -> None:
    assert Variant.ESSENTIAL.priorities() == ()
    assert not Variant.ESSENTIAL.wants_apt()
    assert Variant.MINBASE.priorities() == ("required",)
    assert Variant.STANDARD.priorities() == ("required", "important", "standard")
    assert Variant.APT.wants_apt()


# ---- includes ----------------------------------------------------------------------


def test_include_merge_order(tmp_path: Path) -> None:
    write(tmp_path / "common/base.yaml", f"""\
        ref: base/ref
        suite: bookworm
        sources: ['{SOURCE}']
        packages: [systemd, bash, curl]
        units: [ssh.service]
        metadata: {{vendor: base, from-base: yes-base}}
        """)
    top = write(tmp_path / "top.yaml", """\
        include: common/base.yaml
        ref: top/ref
        packages: [curl, vim]
        metadata: {vendor: top}
        """)
    tf = load_treefile(top)
    assert tf.ref == "top/ref"                    # scalar overridden by the including file
    assert tf.suite == "bookworm"                 # scalar inherited
    assert tf.packages == ("systemd", "bash", "curl", "vim")  # included first, no duplicates
    assert tf.units == ("ssh.service",)
    assert dict(tf.metadata) == {"vendor": "top", "from-base": "yes-base"}
    assert tf.includes == ((tmp_path / "common/base.yaml").resolve(),)


def test_nested_and_multiple_includes(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "packages: [aa]\nversion: '1'\n")
    write(tmp_path / "sub/b.yaml", "include: ../a.yaml\npackages: [bb]\nversion: '2'\n")
    write(tmp_path / "c.yaml", "packages: [cc, aa]\n")
    top = write(tmp_path / "top.yaml",
                f"include: [sub/b.yaml, c.yaml]\nref: r\nsources: ['{SOURCE}']\npackages: [dd]\n")
    tf = load_treefile(top)
    assert tf.packages == ("aa", "bb", "cc", "dd")
    assert tf.version == "2"
    assert [p.name for p in tf.includes] == ["b.yaml", "a.yaml", "c.yaml"]


def test_include_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: b.yaml\nref: r\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    problems = problems_of(tmp_path / "a.yaml")
    assert len(problems) == 1
    assert "cycle" in problems[0]
    assert "a.yaml -> b.yaml -> a.yaml" in problems[0]


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: a.yaml\nref: r\n")
    assert "cycle" in problems_of(tmp_path / "a.yaml")[0]


def test_missing_include(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: nope.yaml\nref: r\n")
    with pytest.raises(TreefileError) as info:
        load_treefile(tmp_path / "a.yaml")
    assert "nope.yaml" in str(info.value)
    assert "cannot read" in str(info.value)


def test_add_files_relative_to_declaring_file(tmp_path: Path) -> None:
    write(tmp_path / "common/files/issue", "from common\n")
    write(tmp_path / "files/motd", "from top\n")
    write(tmp_path / "common/base.yaml", "add-files:\n  - [files/issue, /etc/issue]\n")
    top = write(tmp_path / "top.yaml", f"""\
        include: common/base.yaml
        ref: r
        sources: ['{SOURCE}']
        add-files:
          - [files/motd, /etc/motd]
        """)
    tf = load_treefile(top)
    assert tf.add_files == (
        AddFile((tmp_path / "common/files/issue").resolve(), "/etc/issue"),
        AddFile((tmp_path / "files/motd").resolve(), "/etc/motd"),
    )


def test_problems_in_included_file_name_it(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "colour: blue\npackages: [1]\n")
    top = write(tmp_path / "top.yaml", f"include: base.yaml\nref: r\nsources: ['{SOURCE}']\n")
    problems = problems_of(top)
    assert "base.yaml: colour: unknown key" in problems
    assert "base.yaml: packages[0]: expected a string, got an integer" in problems


# ---- validation ----------------------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    top = write(tmp_path / "t.yaml", """\
        colour: blue
        packages: [1, ok-name, Bad_Name]
        exclude-packages: "nano"
        variant: tiny
        units: [ssh, fstrim.timer]
        default-target: multi-user.service
        add-files:
          - [missing.txt, etc/motd]
          - [missing.txt]
        metadata:
          good: 1
          nested: {a: b}
        """)
    problems = problems_of(top)
    expected = [
        "colour: unknown key",
        "exclude-packages: expected a list, got a string",
        "packages[0]: expected a string, got an integer",
        "add-files[1]: expected [source, destination]",
        "metadata.nested: expected a string, integer or boolean",
        "ref: required key is missing",
        "packages[2]: 'Bad_Name' is not a valid package name",
        "units[0]: 'ssh' is not a systemd unit name",
        "default-target: 'multi-user.service' is not a .target unit",
    ]
    for p in expected:
        assert p in problems, (p, problems)
    assert any(p.startswith("variant: unknown variant 'tiny'") and "minbase" in p for p in problems)
    assert any(p.startswith("add-files[0]: source ") and "does not exist" in p for p in problems)
    assert "add-files[0]: destination 'etc/motd' must be an absolute path inside the tree" in problems
    # The error message names the file and the number of problems.
    with pytest.raises(TreefileError) as info:
        load_treefile(top)
    assert str(info.value).startswith(f"{top}: {len(problems)} problems:")


@pytest.mark.parametrize(("yaml_text", "problem"), [
    ("ref: r\npackages: [1]\n", "packages[0]: expected a string, got an integer"),
    ("ref: r\npackages: [true]\n", "packages[0]: expected a string, got a boolean"),
    ("ref: r\npackages: [[a]]\n", "packages[0]: expected a string, got a list"),
    ("ref: r\npackages: foo\n", "packages: expected a list, got a string"),
    ("ref: r\nunits: {a: b}\n", "units: expected a list, got a mapping"),
    ("ref: 5\n", "ref: expected a string, got an integer"),
    ("ref: r\nsuite: [a]\n", "suite: expected a string, got a list"),
    ("ref: r\nversion: true\n", "version: expected a string, got a boolean"),
    ("ref: r\nvariant: null\n", "variant: expected a string, got null"),
    ("ref: r\nmetadata: [a]\n", "metadata: expected a mapping, got a list"),
    ("ref: r\nmetadata: {'bad key': x}\n", "metadata.bad key: invalid key"),
    ("ref: r\ninclude: 3\n", "include: expected a path or a list of paths, got an integer"),
    ("ref: r\nsources: [3]\n", "sources[0]: expected a source line or a deb822 mapping, got an integer"),
    ("ref: r\nsources: [{Types: 3}]\n", "sources[0].Types: expected a string or list"),
    ("ref: r\nsources: [{Types: deb, Suites: [bookworm, 12]}]\n",
     "sources[0].Suites[1]: expected a string, got an integer"),
    ("ref: 'has space'\n", "ref: 'has space' is not a valid OSTree ref"),
    ("ref: 'a//b'\n", "ref: 'a//b' is not a valid OSTree ref"),
    ("ref: r\nremove-files: ['/usr/../etc']\n",
     "remove-files[0]: '/usr/../etc' must be a path inside the tree"),
    ("ref: r\nremove-files: ['/']\n", "remove-files[0]: '/' must be a path inside the tree"),
    ("ref: r\nexclude-packages: ['UPPER']\n", "exclude-packages[0]: 'UPPER' is not a valid package name"),
    ("ref: r\npackages: ['a']\n", "packages[0]: 'a' is not a valid package name"),
])
def test_single_problem(tmp_path: Path, yaml_text: str, problem: str) -> None:
    assert problems_of(write(tmp_path / "t.yaml", yaml_text)) == [problem]


@pytest.mark.parametrize("dest", ["/etc/../../outside", "relative/path", "../x", "/a/../b"])
def test_add_files_destination_must_stay_inside(tmp_path: Path, dest: str) -> None:
    write(tmp_path / "src.txt", "x")
    top = write(tmp_path / "t.yaml", f"ref: r\nsources: ['{SOURCE}']\nadd-files:\n  - [src.txt, '{dest}']\n")
    assert problems_of(top) == [
        f"add-files[0]: destination {dest!r} must be an absolute path inside the tree"]


def test_version_number_becomes_string(tmp_path: Path) -> None:
    tf = load_treefile(write(tmp_path / "t.yaml", f"ref: r\nsources: ['{SOURCE}']\nversion: 42\n"))
    assert tf.version == "42"


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    top = write(tmp_path / "t.yaml", "ref: r\npackages: [a, b\nunits: []\n")
    problems = problems_of(top)
    assert len(problems) == 1
    assert problems[0].startswith("line ")
    assert "invalid YAML" in problems[0]
    line = int(problems[0].split()[1].rstrip(","))
    assert 2 <= line <= 4


def test_malformed_yaml_exact_line(tmp_path: Path) -> None:
    top = write(tmp_path / "t.yaml", "ref: r\npackages:\n  - a\n\tbad: tab\n")
    [problem] = problems_of(top)
    assert problem.startswith("line 4, column 1: invalid YAML")


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("just a string\n", "a string")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    assert problems_of(write(tmp_path / "t.yaml", text)) == [
        f"expected a mapping at the top level, got {got}"]


def test_empty_file_lacks_ref(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path / "t.yaml", "")) == ["ref: required key is missing"]


def test_unreadable_treefile(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "missing.yaml")
    assert problem.startswith("cannot read")


# ---- to_json and hash_input ------------------------------------------------------------


def test_to_json_has_every_expanded_key(tmp_path: Path) -> None:
    write(tmp_path / "f.txt", "content")
    tf = load_treefile(write(tmp_path / "t.yaml", f"""\
        ref: r
        suite: bookworm
        sources: ['{SOURCE}']
        packages: [vim]
        add-files: [[f.txt, /etc/f]]
        """))
    data = tf.to_json()
    assert set(data) == {"ref", "version", "suite", "sources", "variant", "packages",
                         "exclude-packages", "add-files", "remove-files", "postprocess", "units",
                         "default-target", "metadata"}
    assert data["variant"] == "minbase"
    assert data["packages"] == ["vim"]
    assert data["add-files"] == [[str((tmp_path / "f.txt").resolve()), "/etc/f"]]
    json.dumps(data)  # serialisable
    assert json.loads(tf.canonical_json()) == data


def _tree_in(directory: Path, content: str) -> Treefile:
    write(directory / "files/motd", content)
    return load_treefile(write(directory / "t.yaml", f"""\
        ref: r
        suite: bookworm
        sources: ['{SOURCE}']
        add-files: [[files/motd, /etc/motd]]
        """))


def test_hash_input_uses_file_content_not_paths(tmp_path: Path) -> None:
    a = _tree_in(tmp_path / "one", "hello\n")
    b = _tree_in(tmp_path / "two", "hello\n")
    c = _tree_in(tmp_path / "three", "changed\n")
    assert a.to_json() != b.to_json()  # paths differ
    assert a.hash_input() == b.hash_input()
    assert a.hash_input() != c.hash_input()
    assert a.hash_input()["add-files"] == [[hashlib.sha256(b"hello\n").hexdigest(), "/etc/motd"]]


def test_float_version_is_rejected_not_truncated(tmp_path: Path) -> None:
    # YAML reads 2024.10 as the float 2024.1: accepting it would silently change the version.
    top = write(tmp_path / "t.yaml", f"ref: r\nsources: ['{SOURCE}']\nversion: 2024.10\n")
    [problem] = problems_of(top)
    assert problem.startswith("version: expected a string, got a number")


def test_deb822_source_mapping_accepts_yaml_booleans(tmp_path: Path) -> None:
    # 'Trusted: yes' is a boolean in YAML; deb822 wants yes/no.
    tf = load_treefile(write(tmp_path / "t.yaml", """\
        ref: r
        sources:
          - Types: deb
            URIs: http://example.org/debian
            Suites: bookworm
            Components: main
            Trusted: yes
            Enabled: no
        """))
    assert tf.sources == ("Types: deb\nURIs: http://example.org/debian\nSuites: bookworm\n"
                          "Components: main\nTrusted: yes\nEnabled: no",)


def test_binary_treefile_is_a_treefile_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"ref: r\n\xff\xfe\n")
    assert problems_of(path) == ["not UTF-8 text (byte 7)"]
