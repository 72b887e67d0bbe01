"""Backend-neutral package types.

The compose pipeline and the engine speak of packages through these types and
the ``PackageBackend`` protocol; Debian (apt + dpkg) is the first backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    architecture: str

    @property
    def nevra(self) -> str:
        return f"{self.name}={self.version}:{self.architecture}"

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.architecture)


@dataclass(frozen=True)
class ResolveRequest:
    """What to resolve: a base selection plus named packages."""

    packages: tuple[str, ...]
    essential: bool = True
    priorities: tuple[str, ...] = ()
    with_apt: bool = True
    exclude: tuple[str, ...] = ()
    locked: tuple[Package, ...] = ()


class PackageBackend(Protocol):
    def update(self) -> None: ...

    def resolve(self, request: ResolveRequest) -> list[Package]: ...

    def fetch(self, packages: Sequence[Package]) -> dict[Package, Path]: ...


def package_map(packages: Iterable[Package]) -> dict[str, Package]:
    """Index packages by name (one architecture per name in a tree)."""
    return {p.name: p for p in packages}
