"""Authorization: who may do what, asked of polkit (CheckAuthorization)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dasbus.typing import Variant  # type: ignore[import-untyped]

from ..errors import PermissionDenied

log = logging.getLogger(__name__)

POLKIT = ("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus")


@dataclass(frozen=True)
class Caller:
    sender: str
    uid: int
    pid: int

    def __str__(self) -> str:
        return f"uid {self.uid} (pid {self.pid}, {self.sender})"


def identify(bus: object, sender: str) -> Caller:
    proxy = bus.get_proxy(*DBUS)  # type: ignore[attr-defined]
    uid = int(proxy.GetConnectionUnixUser(sender))
    try:
        pid = int(proxy.GetConnectionUnixProcessID(sender))
    except Exception:  # the bus may not know it
        pid = 0
    return Caller(sender, uid, pid)


def authorize(bus: object, caller: Caller, action: str) -> None:
    """Raise PermissionDenied unless polkit allows ``caller`` to do ``action``.

    Root is authorized even when polkit is not running (early boot, image builds).
    """
    subject = ("system-bus-name", {"name": Variant("s", caller.sender)})
    try:
        authority = bus.get_proxy(*POLKIT)  # type: ignore[attr-defined]
        authorized, challenge, _details = authority.CheckAuthorization(subject, action, {}, 0, "")
    except Exception as e:
        if caller.uid == 0:
            log.info("polkit unavailable (%s); root is authorized", e)
            return
        raise PermissionDenied(f"not authorized to {action}: polkit is not available ({e})") from e
    if not authorized:
        why = "authentication required" if challenge else "not allowed"
        raise PermissionDenied(f"{caller} is not authorized for {action} ({why})")
