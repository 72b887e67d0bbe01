"""Resolve packages to layer on a tree: new packages only, never implicit base changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import apt_pkg

from ..errors import DepsolveError, PackageNotFound
from ..packages import Package
from .backend import AptRoot, _open_cache, native_architecture


@dataclass(frozen=True)
class LayerPlan:
    install: tuple[Package, ...]      # packages to add (requests and their dependencies)
    inactive: tuple[str, ...]         # requests the base already satisfies


def plan_layer(root: AptRoot, requests: Sequence[str]) -> LayerPlan:
    """What installing ``requests`` on the tree whose status file ``root`` holds takes."""
    cache, dep = _open_cache(root)
    arch = native_architecture()
    wanted: list[apt_pkg.Package] = []
    inactive: list[str] = []
    missing: list[str] = []
    for name in requests:
        base, _, want_arch = name.partition(":")
        try:
            pkg = cache[base, want_arch or arch]
        except KeyError:
            try:
                pkg = cache[base, "all"]
            except KeyError:
                missing.append(name)
                continue
        if pkg.current_ver is not None:
            inactive.append(name)
            continue
        if not pkg.has_versions:
            providers = sorted({p[2].parent_pkg.name for p in pkg.provides_list})
            if not providers:
                missing.append(name)
                continue
            if any(cache[p, arch].current_ver is not None for p in providers if (p, arch) in cache):
                inactive.append(name)
                continue
            raise DepsolveError(f"{name} is a virtual package provided by {', '.join(providers)}: "
                                "name one of them")
        wanted.append(pkg)
    if missing:
        raise PackageNotFound(f"package{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")
    with apt_pkg.ActionGroup(dep):  # type: ignore[attr-defined]
        for pkg in wanted:
            dep.mark_install(pkg, True, True)
    if dep.broken_count:
        raise DepsolveError("cannot resolve: " + ", ".join(
            p.name for p in cache.packages if dep.is_inst_broken(p)) + " would have unmet dependencies")
    install: list[Package] = []
    replaced: list[str] = []
    removed: list[str] = []
    for pkg in cache.packages:
        if dep.marked_delete(pkg):
            removed.append(pkg.name)
            continue
        if not (dep.marked_install(pkg) or dep.marked_upgrade(pkg) or dep.marked_downgrade(pkg)):
            continue
        cand = dep.get_candidate_ver(pkg)
        assert cand is not None
        if pkg.current_ver is None:
            install.append(Package(pkg.name, cand.ver_str, cand.arch))
        elif pkg.current_ver.id != cand.id:
            replaced.append(f"{pkg.name} {pkg.current_ver.ver_str} -> {cand.ver_str}")
    if replaced or removed:
        what = "; ".join([f"replace base package {r}" for r in replaced] +
                         [f"remove base package {r}" for r in removed])
        raise DepsolveError(f"layering {', '.join(requests)} would {what}",
                            hint="base packages are only changed explicitly: "
                                 "use 'apt-ostree override replace'")
    return LayerPlan(tuple(sorted(install)), tuple(inactive))
