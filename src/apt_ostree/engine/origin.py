"""The origin of a deployment: what was asked for, rebuilt on every change.

An origin file (GLib key file, libostree's format) records the base refspec,
a pinned commit (``deploy REV``) and, from layering on, the package requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gi.repository import GLib


def _get(kf: GLib.KeyFile, group: str, key: str) -> str | None:
    try:
        return kf.get_string(group, key)  # type: ignore[no-any-return]
    except GLib.Error:
        return None


def _get_list(kf: GLib.KeyFile, group: str, key: str) -> tuple[str, ...]:
    try:
        return tuple(x for x in kf.get_string_list(group, key) if x)
    except GLib.Error:
        return ()


def split_refspec(refspec: str) -> tuple[str | None, str]:
    remote, sep, ref = refspec.partition(":")
    return (remote, ref) if sep else (None, refspec)


@dataclass(frozen=True)
class Origin:
    refspec: str
    override_commit: str | None = None
    requested: tuple[str, ...] = ()
    requested_local: tuple[str, ...] = ()
    override_remove: tuple[str, ...] = ()
    override_replace: tuple[str, ...] = ()
    override_replace_local: tuple[str, ...] = ()
    unreadable: bool = False

    @property
    def remote(self) -> str | None:
        return split_refspec(self.refspec)[0]

    @property
    def ref(self) -> str:
        return split_refspec(self.refspec)[1]

    @classmethod
    def from_keyfile(cls, kf: GLib.KeyFile) -> Origin:
        refspec = _get(kf, "origin", "refspec") or _get(kf, "origin", "baserefspec") or ""
        return cls(
            refspec=refspec,
            override_commit=_get(kf, "origin", "override-commit"),
            requested=_get_list(kf, "packages", "requested"),
            requested_local=_get_list(kf, "packages", "requested-local"),
            override_remove=_get_list(kf, "overrides", "remove"),
            override_replace=_get_list(kf, "overrides", "replace"),
            override_replace_local=_get_list(kf, "overrides", "replace-local"),
        )

    def to_keyfile(self) -> GLib.KeyFile:
        kf = GLib.KeyFile()
        kf.set_string("origin", "refspec", self.refspec)
        if self.override_commit:
            kf.set_string("origin", "override-commit", self.override_commit)
        for group, key, values in (("packages", "requested", self.requested),
                                   ("packages", "requested-local", self.requested_local),
                                   ("overrides", "remove", self.override_remove),
                                   ("overrides", "replace", self.override_replace),
                                   ("overrides", "replace-local", self.override_replace_local)):
            if values:
                kf.set_string_list(group, key, list(values))
        return kf

    def rebased(self, refspec: str) -> Origin:
        return replace(self, refspec=refspec, override_commit=None)

    def pinned_to(self, checksum: str | None) -> Origin:
        return replace(self, override_commit=checksum)

    def with_requests(self, requested: tuple[str, ...]) -> Origin:
        return replace(self, requested=requested)

    def has_layering(self) -> bool:
        return bool(self.requested or self.requested_local or self.override_remove
                    or self.override_replace or self.override_replace_local)

    def without_layering(self) -> Origin:
        return replace(self, requested=(), requested_local=(), override_remove=(),
                       override_replace=(), override_replace_local=())
