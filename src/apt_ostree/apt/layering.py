"""Resolve a layering request on a tree: new packages, removals, explicit replacements.

Base packages are never changed implicitly: a request whose dependencies
would upgrade, downgrade or remove a base package fails and names both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import apt_inst
import apt_pkg

from ..errors import AptOstreeError, DepsolveError, PackageNotFound
from ..packages import Package
from ..run import run
from .backend import AptRoot, _open_cache, native_architecture


@dataclass(frozen=True)
class LocalDeb:
    """A .deb given by path (``install ./x.deb``, ``override replace ./x.deb``)."""

    path: Path
    name: str
    version: str
    architecture: str
    depends: str = ""
    pre_depends: str = ""

    @property
    def package(self) -> Package:
        return Package(self.name, self.version, self.architecture)


def check_member_paths(path: Path) -> None:
    """Refuse a .deb with a file that would land outside the root."""
    listing = run(["dpkg-deb", "--contents", str(path)], check=False)
    if listing.returncode != 0:
        raise AptOstreeError(f"{path}: not a valid .deb package (dpkg-deb cannot list it)")
    for line in listing.stdout.splitlines():
        name = line.split(None, 5)[-1].split(" -> ")[0] if line.strip() else ""
        parts = name.split("/")
        if name.startswith("/") or ".." in parts:
            raise AptOstreeError(f"{path}: refusing a package with a path outside the root: {name}")


def read_local_deb(path: Path) -> LocalDeb:
    check_member_paths(path)
    try:
        control = apt_pkg.TagSection(apt_inst.DebFile(str(path)).control.extractdata("control"))
        return LocalDeb(path=path, name=control["Package"], version=control["Version"],
                        architecture=control.get("Architecture", "all"),
                        depends=control.get("Depends", ""), pre_depends=control.get("Pre-Depends", ""))
    except (SystemError, LookupError, OSError) as e:
        why = str(e).strip() or type(e).__name__
        raise AptOstreeError(f"{path}: not a valid .deb package ({why})") from e


@dataclass(frozen=True)
class LayerRequest:
    packages: tuple[str, ...] = ()
    local: tuple[LocalDeb, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()            # NAME=VERSION
    replace_local: tuple[LocalDeb, ...] = ()

    def is_empty(self) -> bool:
        return not (self.packages or self.local or self.remove or self.replace or self.replace_local)


@dataclass(frozen=True)
class LayerPlan:
    install: tuple[Package, ...] = ()                    # from the sources: new and replacements
    local: tuple[LocalDeb, ...] = ()                     # local .debs to install
    remove: tuple[str, ...] = ()                         # base packages to purge
    inactive: tuple[str, ...] = ()                       # requests the base already satisfies
    replaced: tuple[tuple[Package, Package], ...] = field(default_factory=tuple)  # (base, new)

    def is_empty(self) -> bool:
        return not (self.install or self.local or self.remove)


def _find(cache: apt_pkg.Cache, name: str, arch: str) -> apt_pkg.Package | None:
    base, _, want_arch = name.partition(":")
    for a in ((want_arch,) if want_arch else (arch, "all")):
        try:
            return cache[base, a]
        except KeyError:
            continue
    return None


def _installed(cache: apt_pkg.Cache, name: str, arch: str) -> apt_pkg.Package:
    pkg = _find(cache, name, arch)
    if pkg is None or pkg.current_ver is None:
        raise AptOstreeError(f"{name} is not a package of the base")
    return pkg


def _satisfied(dep: apt_pkg.DepCache, group: list[tuple[str, str, str]],
               cache: apt_pkg.Cache, arch: str) -> bool:
    for name, ver, op in group:
        pkg = _find(cache, name, arch)
        if pkg is None:
            continue
        candidates = [pkg.current_ver] if pkg.current_ver else []
        if dep.marked_install(pkg):
            c = dep.get_candidate_ver(pkg)
            candidates.append(c) if c is not None else None
        for v in candidates:
            if v is not None and (not ver or apt_pkg.check_dep(v.ver_str, op, ver)):
                return True
        if not ver and pkg.current_ver is None and pkg.has_provides and any(
                p[2].parent_pkg.current_ver is not None for p in pkg.provides_list):
            return True
    return False


def plan_layer(root: AptRoot, request: LayerRequest) -> LayerPlan:
    """What ``request`` takes on the tree whose dpkg status ``root`` holds."""
    cache, dep = _open_cache(root)
    arch = native_architecture()
    replace_names = {r.partition("=")[0] for r in request.replace} | {d.name for d in request.replace_local}

    wanted: list[apt_pkg.Package] = []
    inactive: list[str] = []
    missing: list[str] = []
    for name in request.packages:
        pkg = _find(cache, name, arch)
        if pkg is None or (not pkg.has_versions and not pkg.has_provides):
            missing.append(name)
            continue
        if pkg.current_ver is not None:
            inactive.append(name)
            continue
        if not pkg.has_versions:
            providers = sorted({p[2].parent_pkg.name for p in pkg.provides_list})
            if any(p[2].parent_pkg.current_ver is not None for p in pkg.provides_list):
                inactive.append(name)
                continue
            raise DepsolveError(f"{name} is a virtual package provided by {', '.join(providers)}: "
                                "name one of them")
        wanted.append(pkg)
    if missing:
        raise PackageNotFound(f"package{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")
    for deb in request.local:
        pkg = _find(cache, deb.name, arch)
        if pkg is not None and pkg.current_ver is not None:
            raise DepsolveError(f"{deb.name} is a base package ({pkg.current_ver.ver_str}); "
                                f"to replace it with {deb.path.name} use 'override replace'")
    for deb in request.replace_local:
        _installed(cache, deb.name, arch)

    with apt_pkg.ActionGroup(dep):  # type: ignore[attr-defined]
        for name in request.remove:
            dep.mark_delete(_installed(cache, name, arch), True)
        for spec in request.replace:
            name, _, version = spec.partition("=")
            pkg = _installed(cache, name, arch)
            match = [v for v in pkg.version_list if v.ver_str == version]
            if not match:
                raise PackageNotFound(f"override replace: {name} {version} is not available "
                                      "from the sources")
            dep.set_candidate_ver(pkg, match[0])
            dep.mark_install(pkg, True, True)
        for pkg in wanted:
            dep.mark_install(pkg, True, True)
        # Dependencies of local packages: the first available alternative of each
        # group that neither the base nor the plan satisfies.
        for deb in (*request.local, *request.replace_local):
            for field_value in (deb.pre_depends, deb.depends):
                for group in apt_pkg.parse_depends(field_value) if field_value else []:
                    if _satisfied(dep, group, cache, arch):
                        continue
                    for name, _ver, _op in group:
                        pkg = _find(cache, name, arch)
                        if pkg is not None and pkg.has_versions:
                            dep.mark_install(pkg, True, True)
                            break
                    else:
                        alternatives = " | ".join(g[0] for g in group)
                        raise DepsolveError(f"{deb.name} depends on {alternatives}, "
                                            "which is not available")

    if dep.broken_count:
        broken = sorted(p.name for p in cache.packages if dep.is_inst_broken(p))
        if request.remove:
            raise DepsolveError(f"cannot remove {', '.join(request.remove)}: "
                                f"{', '.join(broken)} depend{'s' if len(broken) == 1 else ''} on it",
                                hint="remove those too, in the same command")
        raise DepsolveError(f"cannot resolve: {', '.join(broken)} would have unmet dependencies")

    install: list[Package] = []
    replaced: list[tuple[Package, Package]] = []
    implicit: list[str] = []
    removed: list[str] = []
    for pkg in cache.packages:
        if dep.marked_delete(pkg):
            if pkg.name not in request.remove:
                removed.append(pkg.name)
            continue
        if not (dep.marked_install(pkg) or dep.marked_upgrade(pkg) or dep.marked_downgrade(pkg)):
            continue
        cand = dep.get_candidate_ver(pkg)
        assert cand is not None
        new = Package(pkg.name, cand.ver_str, cand.arch)
        cur = pkg.current_ver
        if cur is None:
            install.append(new)
        elif cur.id != cand.id:
            if pkg.name in replace_names:
                install.append(new)
                replaced.append((Package(pkg.name, cur.ver_str, cur.arch), new))
            else:
                implicit.append(f"base package {pkg.name} {cur.ver_str} would be replaced by {cand.ver_str}")
    if implicit or removed:
        what = list(implicit) + [f"base package {r} would be removed" for r in removed]
        asked = ", ".join([*request.packages, *(d.name for d in request.local)]) or "the request"
        raise DepsolveError(f"installing {asked}: {'; '.join(what)}",
                            hint="base packages are only changed explicitly: "
                                 "'apt-ostree override replace PKG=VERSION' or 'override remove PKG'")
    for deb in request.replace_local:
        cur = _installed(cache, deb.name, arch).current_ver
        assert cur is not None
        replaced.append((Package(deb.name, cur.ver_str, cur.arch), deb.package))
    return LayerPlan(install=tuple(sorted(install)), local=(*request.local, *request.replace_local),
                     remove=tuple(request.remove), inactive=tuple(inactive),
                     replaced=tuple(sorted(replaced)))


def search(root: AptRoot, terms: Sequence[str]) -> list[tuple[str, str, str]]:
    """(name, version, summary) of packages whose name or summary has every term."""
    cache, dep = _open_cache(root)
    records = apt_pkg.PackageRecords(cache)
    arch = native_architecture()
    out = []
    lowered = [t.lower() for t in terms]
    for pkg in cache.packages:
        if pkg.architecture not in (arch, "all"):
            continue
        cand = dep.get_candidate_ver(pkg)
        if cand is None:
            continue
        records.lookup(cand.translated_description.file_list[0]
                       if cand.translated_description else cand.file_list[0])
        summary = records.short_desc or ""
        text = f"{pkg.name} {summary}".lower()
        if all(t in text for t in lowered):
            out.append((pkg.name, cand.ver_str, summary))
    return sorted(out)
