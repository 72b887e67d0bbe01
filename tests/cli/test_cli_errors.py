"""CLI contract: exit codes (0, 1, 2) and one clear error line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apt_ostree.cli import main

TOP = Path(__file__).resolve().parent.parent.parent
SOURCE = "deb http://deb.debian.org/debian bookworm main"


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "motd").write_text("hi\n")
    (tmp_path / "base.yaml").write_text("packages: [systemd]\nmetadata: {vendor: base}\n")
    path = tmp_path / "good.yaml"
    path.write_text(f"include: base.yaml\nref: debian/test\nsuite: bookworm\nsources: ['{SOURCE}']\n"
                    "packages: [vim]\nadd-files: [[motd, /etc/motd]]\n")
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("packages: [1]\ncolour: blue\n")
    return path


def test_print_only_invalid_treefile_exits_1(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "tree", str(bad), "--print-only"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("error: ")
    assert str(bad) in first
    assert "Traceback" not in err
    assert "packages[0]: expected a string, got an integer" in err
    assert "colour: unknown key" in err
    assert "ref: required key is missing" in err


def test_single_problem_is_a_single_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"sources: ['{SOURCE}']\n")
    assert main(["compose", "tree", str(path), "--print-only"]) == 1
    _, err = capsys.readouterr()
    assert err == f"error: {path}: ref: required key is missing\n"


def test_missing_treefile_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "tree", str(tmp_path / "nope.yaml"), "--print-only"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("error: ") and "cannot read" in err
    assert len(err.splitlines()) == 1


def test_print_only_prints_expanded_json(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "tree", str(good), "--print-only"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    data = json.loads(out)
    assert data["ref"] == "debian/test"
    assert data["packages"] == ["systemd", "vim"]          # include expanded
    assert data["metadata"] == {"vendor": "base"}
    assert data["variant"] == "minbase"                     # default filled in
    assert data["sources"] == [SOURCE]
    assert data["add-files"] == [[str((good.parent / "motd").resolve()), "/etc/motd"]]
    assert "include" not in data
    for key in ("exclude-packages", "remove-files", "postprocess", "units", "default-target",
                "version", "suite"):
        assert key in data


def test_unknown_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert "invalid choice" in err
    assert "Traceback" not in err


def test_unknown_compose_step_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compose", "bake"])
    assert info.value.code == 2


def test_no_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_compose_tree_without_repo_exits_2(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "tree", str(good)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert "--repo" in err
    assert len(err.splitlines()) == 1


def test_metadata_string_without_value_exits_2(good: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    assert main(["compose", "tree", str(good), "--repo", str(repo),
                 "--add-metadata-string", "novalue"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: --add-metadata-string: expected KEY=VALUE")
    assert "'novalue'" in err
    assert not repo.exists()  # refused before doing anything


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("apt-ostree ")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(TOP / "src")
    return subprocess.run([sys.executable, "-m", "apt_ostree", *args], cwd=TOP, env=env,
                          capture_output=True, text=True, timeout=60)


def test_module_entry_point_invalid_treefile(bad: Path) -> None:
    proc = _run("compose", "tree", str(bad), "--print-only")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[0].startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_module_entry_point_usage_error() -> None:
    proc = _run("no-such-command")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_debug_shows_traceback(bad: Path) -> None:
    proc = _run("--debug", "compose", "tree", str(bad), "--print-only")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "error: " in proc.stderr
