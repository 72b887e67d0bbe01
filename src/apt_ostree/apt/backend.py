"""Resolve and fetch Debian packages with python-apt, against a private apt root.

Every function works on an ``AptRoot``: a directory holding the sources,
package lists and .deb cache of one configuration.  apt's global
configuration is set for each operation (``_configure``), never left to leak
from one root to the next.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import apt_pkg

from ..errors import DepsolveError, FetchError, LockfileError, PackageNotFound, SourcesError
from ..packages import Package, ResolveRequest
from ..run import run

log = logging.getLogger(__name__)

_initialized = False


def _init() -> None:
    global _initialized
    if not _initialized:
        apt_pkg.init_config()
        apt_pkg.init_system()
        _initialized = True


def native_architecture() -> str:
    _init()
    return str(apt_pkg.config.find("APT::Architecture") or platform.machine())


@dataclass(frozen=True)
class AptRoot:
    """The on-disk state of one apt configuration."""

    path: Path
    archives: Path

    @classmethod
    def create(cls, path: Path, sources: Sequence[str], archives: Path | None = None) -> AptRoot:
        archives = archives or path / "archives"
        for d in ("etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d",
                  "var/lib/apt/lists/partial", "var/lib/dpkg", "var/cache/apt"):
            (path / d).mkdir(parents=True, exist_ok=True)
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        status = path / "var/lib/dpkg/status"
        if not status.exists():
            status.write_text("")
        one_line = [s for s in sources if "\n" not in s and not s.startswith("Types:")]
        deb822 = [s for s in sources if s not in one_line]
        _write_if_changed(path / "etc/apt/sources.list.d/apt-ostree.list",
                          "".join(f"{s}\n" for s in one_line))
        _write_if_changed(path / "etc/apt/sources.list.d/apt-ostree.sources",
                          "\n\n".join(deb822) + ("\n" if deb822 else ""))
        return cls(path=path, archives=archives)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _configure(root: AptRoot) -> None:
    """Point apt's global configuration at ``root`` for the next operation."""
    _init()
    c = apt_pkg.config
    c.set("Dir", str(root.path))
    c.set("Dir::State", "var/lib/apt")
    c.set("Dir::State::Lists", "lists")
    c.set("Dir::State::status", str(root.path / "var/lib/dpkg/status"))
    c.set("Dir::Cache", str(root.path / "var/cache/apt"))
    c.set("Dir::Cache::Archives", str(root.archives))
    # Keep the binary caches (some images turn them off): opening is then fast.
    c.set("Dir::Cache::pkgcache", "pkgcache.bin")
    c.set("Dir::Cache::srcpkgcache", "srcpkgcache.bin")
    c.set("Dir::Etc", str(root.path / "etc/apt"))
    c.set("Dir::Etc::sourcelist", str(root.path / "etc/apt/sources.list"))
    c.set("Dir::Etc::sourceparts", str(root.path / "etc/apt/sources.list.d"))
    c.set("Dir::Etc::preferences", str(root.path / "etc/apt/preferences"))
    c.set("Dir::Etc::preferencesparts", str(root.path / "etc/apt/preferences.d"))
    # Keys: the machine's trusted keyrings (Signed-By paths are absolute anyway).
    c.set("Dir::Etc::trusted", "/etc/apt/trusted.gpg")
    c.set("Dir::Etc::trustedparts", "/etc/apt/trusted.gpg.d")
    c.set("APT::Install-Recommends", "false")
    c.set("APT::Install-Suggests", "false")
    c.set("Acquire::Languages", "none")
    c.set("Acquire::GzipIndexes", "false")
    c.set("Acquire::AllowInsecureRepositories", "false")
    c.set("Debug::NoLocking", "true")
    # The cache lives in directories _apt cannot necessarily enter.
    c.set("APT::Sandbox::User", "root")
    apt_pkg.init_system()


def apt_options(root: AptRoot) -> list[str]:
    """The same configuration as ``_configure``, as apt-get command-line options."""
    opts = {
        "Dir": str(root.path),
        "Dir::State::status": str(root.path / "var/lib/dpkg/status"),
        "Dir::Cache::Archives": str(root.archives),
        "Dir::Cache": str(root.path / "var/cache/apt"),
        "Dir::Cache::pkgcache": "pkgcache.bin",
        "Dir::Cache::srcpkgcache": "srcpkgcache.bin",
        "Dir::Etc::trusted": "/etc/apt/trusted.gpg",
        "Dir::Etc::trustedparts": "/etc/apt/trusted.gpg.d",
        "APT::Sandbox::User": "root",
        "Acquire::Languages": "none",
        # Uncompressed lists: looking a record up in a compressed one costs milliseconds.
        "Acquire::GzipIndexes": "false",
        "Acquire::AllowInsecureRepositories": "false",
        "Debug::NoLocking": "true",
    }
    return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]


def lists_age(root: AptRoot) -> float | None:
    """Seconds since the lists of ``root`` were last refreshed (None: never)."""
    stamp = root.path / "var/lib/apt/lists/.apt-ostree-updated"
    try:
        updated = stamp.stat().st_mtime
    except OSError:
        return None
    # Lists fetched for other sources are as good as none.
    for f in (root.path / "etc/apt/sources.list.d").iterdir():
        if f.stat().st_mtime > updated:
            return None
    return max(0.0, time.time() - updated)


def update(root: AptRoot) -> None:
    """Refresh the package lists; unreachable or unsigned sources are errors."""
    proc = run(["apt-get", "update", "-q", "--error-on=any", *apt_options(root)],
               check=False)
    if proc.returncode != 0:
        # The E:/W: lines say it all ("Err:N URI" lines only repeat the URI).
        problems = [ln[3:].strip() for ln in proc.stdout.splitlines()
                    if ln.startswith(("E: ", "W: "))] or proc.stdout.splitlines()[-3:]
        problems = [p for p in problems if not p.startswith("Some index files failed")]
        problems = [" ".join(p.split()) for p in dict.fromkeys(problems)]
        raise SourcesError("cannot update package lists: " + "; ".join(problems[:4]),
                           hint="check the treefile's sources and the network")
    (root.path / "var/lib/apt/lists/.apt-ostree-updated").touch()


_opened: dict[Path, tuple[tuple[object, ...], apt_pkg.Cache]] = {}


def _cache_stamp(root: AptRoot) -> tuple[object, ...]:
    """What an opened cache depends on: the status file, the lists, the sources."""
    stamp: list[object] = []
    for p in (root.path / "var/lib/dpkg/status", root.path / "var/lib/apt/lists",
              root.path / "etc/apt/sources.list.d"):
        try:
            st = p.stat()
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def _open_cache(root: AptRoot) -> tuple[apt_pkg.Cache, apt_pkg.DepCache]:
    """The package cache of ``root`` (opened once per process while unchanged), fresh marks."""
    _configure(root)
    stamp = _cache_stamp(root)
    known = _opened.get(root.path)
    if known is not None and known[0] == stamp:
        # One cache file holds one depcache: forget the marks of the last operation.
        dep = apt_pkg.DepCache(known[1])
        dep.init()
        return known[1], dep
    try:
        cache = apt_pkg.Cache(None)
    except SystemError as e:
        raise SourcesError(f"cannot read package lists: {str(e).strip()}") from e
    _opened[root.path] = (stamp, cache)
    if not any(f.index_type == "Debian Package Index"
               for f in cache.file_list):  # type: ignore[attr-defined]
        raise SourcesError("no package lists: the sources were never fetched "
                           "(run without --cache-only or check the sources)")
    return cache, apt_pkg.DepCache(cache)


def _explain(cache: apt_pkg.Cache, dep: apt_pkg.DepCache, refused: Sequence[apt_pkg.Package],
             candidate: Callable[[apt_pkg.Package], apt_pkg.Version | None]) -> list[str]:
    """Why the marked set is broken or ``refused`` could not be marked, one line per cause."""
    lines: list[str] = []
    seen: set[int] = set()
    broken = [pkg for pkg in cache.packages if dep.is_inst_broken(pkg)]
    for pkg in [*refused, *broken]:
        lines += _why_not_installable(dep, pkg, seen, candidate)
    for pkg in broken:
        ver = candidate(pkg)
        for kind in ("Conflicts", "Breaks"):
            for group in ver.depends_list.get(kind, []) if ver else ():
                for d in group:
                    if dep.marked_install(d.target_pkg) and _satisfies(dep, d):
                        lines.append(f"{pkg.name} conflicts with {_dep_names(group)}")
    return list(dict.fromkeys(lines))


def _dep_names(group: Sequence[apt_pkg.Dependency]) -> str:
    return " | ".join(f"{d.target_pkg.name}" + (f" ({d.comp_type} {d.target_ver})" if d.target_ver else "")
                      for d in group)


def _why_not_installable(dep: apt_pkg.DepCache, pkg: apt_pkg.Package, seen: set[int],
                         candidate: Callable[[apt_pkg.Package], apt_pkg.Version | None]) -> list[str]:
    """The dependencies that keep apt from installing ``pkg``, followed down the chain."""
    if pkg.id in seen:
        return []
    seen.add(pkg.id)
    ver = candidate(pkg)
    if ver is None:
        return [f"{pkg.name} has no installable version"]
    lines: list[str] = []
    for kind in ("PreDepends", "Depends"):
        for group in ver.depends_list.get(kind, []):
            names = _dep_names(group)
            targets = [t for d in group for t in d.all_targets()]
            if not targets:
                available = sorted({v.ver_str for d in group for v in d.target_pkg.version_list})
                lines.append(f"{pkg.name} depends on {names}, which is not available"
                             + (f" (only {', '.join(available)})" if available else ""))
                continue
            candidates = [t for t in targets
                          if (c := candidate(t.parent_pkg)) is not None and c.id == t.id]
            if not candidates:
                lines.append(f"{pkg.name} depends on {names}, which is not the candidate version")
                continue
            if any(dep.marked_install(t.parent_pkg) for t in candidates):
                continue
            sub = [w for t in candidates for w in _why_not_installable(dep, t.parent_pkg, seen, candidate)]
            lines += sub or [f"{pkg.name} depends on {names}, which cannot be installed"]
    return lines


def _satisfies(dep: apt_pkg.DepCache, d: apt_pkg.Dependency) -> bool:
    cand = dep.get_candidate_ver(d.target_pkg)
    return (cand is not None and any(t.id == cand.id for t in d.all_targets())) or (
        cand is None and bool(d.all_targets()))


def _lookup(cache: apt_pkg.Cache, name: str, arch: str) -> apt_pkg.Package | None:
    base, _, want_arch = name.partition(":")
    try:
        pkg = cache[base, want_arch or arch]
    except KeyError:
        try:
            pkg = cache[base, "all"]
        except KeyError:
            return None
    return pkg


def resolve(root: AptRoot, request: ResolveRequest) -> list[Package]:
    """The complete package set for ``request``, dependencies included."""
    cache, dep = _open_cache(root)
    arch = native_architecture()
    excluded = set(request.exclude)
    pinned: dict[int, apt_pkg.Version] = {}

    for locked in request.locked:
        pkg = _lookup(cache, locked.name, arch)
        match = [v for v in (pkg.version_list if pkg else [])
                 if v.ver_str == locked.version and v.arch == locked.architecture
                 and any(f.index_type == "Debian Package Index" for f, _ in v.file_list)]
        if pkg is None or not match:
            raise LockfileError(
                f"locked version {locked.name} {locked.version} ({locked.architecture}) "
                "is not available from the sources",
                hint="update the lockfile or drop --lockfile")
        dep.set_candidate_ver(pkg, match[0])
        pinned[pkg.id] = match[0]

    wanted: list[apt_pkg.Package] = []
    missing: list[str] = []
    for name in request.packages:
        if name.split(":")[0] in excluded:
            raise DepsolveError(f"package {name} is both requested and excluded")
        pkg = _lookup(cache, name, arch)
        if pkg is None or (not pkg.has_versions and not pkg.has_provides):
            missing.append(name)
            continue
        if not pkg.has_versions:
            providers = sorted({p[2].parent_pkg.name for p in pkg.provides_list})
            if len(providers) != 1:
                raise DepsolveError(f"{name} is a virtual package provided by "
                                    f"{', '.join(providers)}: name one of them")
            pkg = cache[providers[0], arch] if (providers[0], arch) in cache else cache[providers[0]]
        wanted.append(pkg)
    if missing:
        raise PackageNotFound(f"package{'s' if len(missing) > 1 else ''} not found: "
                              f"{', '.join(missing)}")

    base: list[apt_pkg.Package] = []
    for pkg in cache.packages:
        if pkg.architecture != arch or pkg.name in excluded:
            continue
        cand = dep.get_candidate_ver(pkg)
        if cand is None:
            continue
        if (request.essential and pkg.essential) or cand.priority_str in request.priorities \
                or (request.with_apt and pkg.name == "apt"):
            base.append(pkg)

    with apt_pkg.ActionGroup(dep):  # type: ignore[attr-defined]
        for pkg in sorted(base, key=lambda p: p.name) + wanted:
            dep.mark_install(pkg, True, True)
    if dep.broken_count:
        fixer = apt_pkg.ProblemResolver(dep)
        for pkg in wanted + base:
            fixer.protect(pkg)
        try:
            fixer.resolve(True)
        except SystemError:
            pass
    # apt leaves a package it cannot install unmarked, and drops its candidate.
    refused = [pkg for pkg in wanted if not dep.marked_install(pkg)]
    if dep.broken_count or refused:
        policy = dep.policy

        def candidate(pkg: apt_pkg.Package) -> apt_pkg.Version | None:
            return (dep.get_candidate_ver(pkg) or pinned.get(pkg.id)
                    or policy.get_candidate_ver(pkg))  # type: ignore[attr-defined]

        why = _explain(cache, dep, refused, candidate) or [
            f"cannot install {', '.join(p.name for p in refused)}" if refused
            else "unsatisfiable dependencies"]
        raise DepsolveError("cannot resolve the package set:\n" + "\n".join(f"  {w}" for w in why))

    result: list[Package] = []
    for pkg in cache.packages:
        if dep.marked_install(pkg):
            ver = dep.get_candidate_ver(pkg)
            assert ver is not None
            if pkg.name in excluded:
                raise DepsolveError(f"excluded package {pkg.name} is needed by the package set")
            result.append(Package(pkg.name, ver.ver_str, ver.arch))
    return sorted(result)


def archive_name(p: Package) -> str:
    """The file name apt gives a downloaded .deb."""
    q = apt_pkg.quote_string  # type: ignore[attr-defined]
    return f"{q(p.name, '_:')}_{q(p.version, '_:')}_{q(p.architecture, '_:.')}.deb"


def fetch(root: AptRoot, packages: Sequence[Package]) -> dict[Package, Path]:
    """Download ``packages`` into the archive cache (hash-checked), reuse cached ones.

    Returns each package's .deb and its original Packages stanza is available
    through ``records()``.
    """
    cache, dep = _open_cache(root)
    arch = native_architecture()
    selected: dict[Package, apt_pkg.Version] = {}
    for p in packages:
        pkg = _lookup(cache, p.name, arch if p.architecture != "all" else "all")
        vers = [v for v in (pkg.version_list if pkg else [])
                if v.ver_str == p.version and v.arch == p.architecture]
        if pkg is None or not vers:
            raise FetchError(f"{p.name} {p.version} is not available from the sources")
        selected[p] = vers[0]
        cached = root.archives / archive_name(p)
        if cached.is_file() and cached.stat().st_size == vers[0].size:
            # apt verified it when it was downloaded, and whatever installs it
            # (mmdebstrap's apt, from an index carrying the archive's hashes)
            # verifies it again: hashing every cached .deb here too is wasted time.
            continue
        dep.set_candidate_ver(pkg, vers[0])
        dep.mark_install(pkg, False, True)
    sources = apt_pkg.SourceList()
    sources.read_main_list()
    records = apt_pkg.PackageRecords(cache)
    if dep.inst_count:
        acquire = apt_pkg.Acquire()
        manager = apt_pkg.PackageManager(dep)
        try:
            manager.get_archives(acquire, sources, records)
        except SystemError as e:
            raise FetchError(f"cannot fetch packages: {str(e).strip()}") from e
        acquire.run()
        failed = [f"{i.desc_uri}: {i.error_text}" for i in acquire.items if i.status != i.STAT_DONE]
        if failed:
            raise FetchError("cannot download packages:\n" + "\n".join(f"  {f}" for f in failed))
    out = {}
    for p in packages:
        path = root.archives / archive_name(p)
        local = _local_archive(sources, records, selected[p])
        if local is not None:
            # apt uses file: archives in place; the build reads the cache only.
            _copy_if_changed(local, path)
        if not path.is_file():
            raise FetchError(f"{p.name} {p.version}: download left no file at {path}")
        out[p] = path
    return out


def _local_archive(sources: apt_pkg.SourceList, records: apt_pkg.PackageRecords,
                   ver: apt_pkg.Version) -> Path | None:
    """The .deb of ``ver`` when it comes from a file: source (apt does not copy those)."""
    for pkgfile, index in ver.file_list:
        source = sources.find_index(pkgfile)
        # Only file: sources matter; look no record up for the others (slow on
        # compressed lists).
        if source is None or not source.archive_uri("").startswith("file:") \
                or not records.lookup((pkgfile, index)):
            continue
        uri = source.archive_uri(records.filename)
        if uri.startswith("file:"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
            if path.is_file():
                return path
    return None


def _copy_if_changed(src: Path, dest: Path) -> None:
    try:
        if src.samefile(dest) or (dest.stat().st_size == src.stat().st_size
                                  and dest.read_bytes() == src.read_bytes()):
            return
    except FileNotFoundError:
        pass
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)


def stanzas(root: AptRoot, packages: Iterable[Package]) -> dict[Package, str]:
    """The Packages-index stanza of each package, as the archive published it."""
    cache, _ = _open_cache(root)
    records = apt_pkg.PackageRecords(cache)
    arch = native_architecture()
    out = {}
    for p in packages:
        pkg = _lookup(cache, p.name, arch if p.architecture != "all" else "all")
        for v in pkg.version_list if pkg else []:
            if v.ver_str == p.version and v.arch == p.architecture:
                records.lookup(v.file_list[0])
                out[p] = records.record
                break
        else:
            raise FetchError(f"no index record for {p.name} {p.version}")
    return out


def write_flat_repo(directory: Path, stanza_by_pkg: dict[Package, str],
                    files: dict[Package, Path], base: Path, suite: str) -> None:
    """Write a flat apt repository index naming exactly these packages.

    ``Filename`` fields are relative to ``base`` (the repository's URI).
    """
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(stanza_by_pkg):
        rel = os.path.relpath(files[p], base)
        lines = []
        for line in stanza_by_pkg[p].rstrip("\n").splitlines():
            if line.startswith("Filename:"):
                line = f"Filename: {rel}"
            lines.append(line)
        out.append("\n".join(lines))
    index = ("\n\n".join(out) + "\n").encode()
    (directory / "Packages").write_bytes(index)
    # A Release file so that suite-based selections (mmdebstrap's) match.
    digest = hashlib.sha256(index).hexdigest()
    (directory / "Release").write_text(
        f"Origin: apt-ostree\nLabel: apt-ostree\nSuite: {suite}\nCodename: {suite}\n"
        f"Architectures: {native_architecture()} all\n"
        f"SHA256:\n {digest} {len(index)} Packages\n")
