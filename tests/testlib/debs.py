"""Build real, tiny Debian packages with ``dpkg-deb`` and serve them as flat apt repositories.

The packages are reproducible (fixed ``SOURCE_DATE_EPOCH``, root-owned, sorted
by dpkg-deb): rebuilding one gives the same bytes, so the .deb cache that
composes share between test runs never holds a stale file under a
reused name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Every test package is built as if on this date (2024-01-01).
DEB_EPOCH = "1704067200"

MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm")


@dataclass(frozen=True)
class DebFile:
    content: str | bytes
    mode: int = 0o644


@dataclass(frozen=True)
class DebSpec:
    """A package to build.  Files under /etc are conffiles unless ``conffiles`` says otherwise."""

    name: str
    version: str = "1.0"
    architecture: str = "all"
    depends: tuple[str, ...] = ()
    files: Mapping[str, str | bytes | DebFile] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    scripts: Mapping[str, str] = field(default_factory=dict)
    conffiles: tuple[str, ...] | None = None
    extra_control: Mapping[str, str] = field(default_factory=dict)
    description: str = "apt-ostree test package"

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}.deb"

    def control(self) -> str:
        fields = {
            "Package": self.name,
            "Version": self.version,
            "Architecture": self.architecture,
            "Maintainer": "apt-ostree tests <tests@apt-ostree.invalid>",
            "Section": "misc",
            "Priority": "optional",
            **({"Depends": ", ".join(self.depends)} if self.depends else {}),
            **self.extra_control,
            "Description": f"{self.description}\n {self.name} {self.version}, built by the test suite.",
        }
        return "".join(f"{k}: {v}\n" for k, v in fields.items())

    def conffile_list(self) -> list[str]:
        if self.conffiles is not None:
            return list(self.conffiles)
        return sorted(p for p in self.files if p.startswith("/etc/"))


def build_deb(spec: DebSpec, outdir: Path, workdir: Path) -> Path:
    """Build ``spec`` with ``dpkg-deb --build`` into ``outdir``; returns the .deb."""
    staging = workdir / f"{spec.name}_{spec.version}"
    if staging.exists():
        shutil.rmtree(staging)
    debian = staging / "DEBIAN"
    debian.mkdir(parents=True)
    (debian / "control").write_text(spec.control())
    conffiles = spec.conffile_list()
    if conffiles:
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
    for script, body in spec.scripts.items():
        if script not in MAINTAINER_SCRIPTS:
            raise ValueError(f"{spec.name}: unknown maintainer script {script}")
        path = debian / script
        path.write_text(body if body.startswith("#!") else "#!/bin/sh\nset -e\n" + body)
        path.chmod(0o755)
    for d in spec.dirs:
        (staging / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for rel, value in spec.files.items():
        item = value if isinstance(value, DebFile) else DebFile(value)
        path = staging / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item.content, bytes):
            path.write_bytes(item.content)
        else:
            path.write_text(item.content)
        path.chmod(item.mode)
    for dirpath, dirnames, _ in os.walk(staging):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    outdir.mkdir(parents=True, exist_ok=True)
    out = outdir / spec.filename
    env = {**os.environ, "SOURCE_DATE_EPOCH": DEB_EPOCH, "LC_ALL": "C.UTF-8"}
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(staging), str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    shutil.rmtree(staging)
    return out


@dataclass(frozen=True)
class FlatRepo:
    """A flat apt repository: ``deb [trusted=yes] file:///path ./``."""

    path: Path
    packages: tuple[DebSpec, ...]

    @property
    def uri(self) -> str:
        return f"file://{self.path}"

    def source_line(self, *, trusted: bool = True) -> str:
        return f"deb {'[trusted=yes] ' if trusted else ''}{self.uri} ./"


def build_flat_repo(path: Path, specs: Iterable[DebSpec], workdir: Path) -> FlatRepo:
    """Build every package into ``path`` and index it with apt-ftparchive."""
    specs = tuple(specs)
    path.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        build_deb(spec, path, workdir)
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=path, check=True,
                              capture_output=True, text=True, env=env).stdout
    (path / "Packages").write_text(packages)
    release = subprocess.run(["apt-ftparchive", "release", "."], cwd=path, check=True,
                             capture_output=True, text=True, env=env).stdout
    (path / "Release").write_text(release)
    return FlatRepo(path, specs)
