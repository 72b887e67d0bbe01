"""Printing a status (text or JSON): stdlib only, so the cached path stays fast."""

from __future__ import annotations

import sys
import time

from ..statuscache import status_json


def _ts(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def print_status(data: dict, *, as_json: bool, verbose: bool, booted_only: bool,  # type: ignore[type-arg]
                 json_text: str | None = None) -> None:
    """``json_text``: ``data`` as JSON already (from the status cache)."""
    if as_json:
        sys.stdout.write(json_text if json_text is not None and not booted_only
                         else status_json(data, booted_only=booted_only))
        return
    txn = data.get("transaction")
    print(f"State: {'busy (' + str(txn.get('title', '')) + ')' if txn else 'idle'}")
    print("Deployments:")
    for d in data["deployments"]:
        if booted_only and not d["booted"]:
            continue
        mark = "●" if d["booted"] else " "
        flags = [f for f, on in (("default", d["default"]), ("staged", d["staged"]),
                                 ("pinned", d["pinned"])) if on]
        suffix = f" ({', '.join(flags)})" if flags else ""
        ref = d["origin"].partition(":")[2] or d["origin"] or "(the origin names no refspec)"
        print(f"{mark} {d['osname']}:{ref}{suffix}")
        rows = []
        version = d.get("version") or "-"
        rows.append(("Version", f"{version} ({_ts(d['timestamp'])})"))
        if d["base-checksum"] != d["checksum"]:
            rows.append(("BaseCommit", d["base-checksum"]))
        rows.append(("Commit", d["checksum"]))
        if d.get("override-commit"):
            rows.append(("Pinned to", d["override-commit"]))
        if verbose:
            rows.append(("Origin", d["origin"]))
            rows.append(("Id", d["id"]))
            rows.append(("Kernel args", " ".join(d["kernel-arguments"]) or "-"))
        if d["unlocked"] != "none":
            rows.append(("Unlocked", d["unlocked"]))
        if d.get("live-replaced"):
            rows.append(("LiveCommit", d["live-replaced"]))
        if d.get("live-inprogress"):
            rows.append(("LiveInterrupted", f"{d['live-inprogress']} (run apply-live again)"))
        for key, title, sep in (("base-removals", "RemovedBasePackages", " "),
                                ("base-local-replacements", "ReplacedBasePackages", ", "),
                                ("packages", "LayeredPackages", " "),
                                ("local-packages", "LocalPackages", " "),
                                ("inactive-requests", "InactiveRequests", " ")):
            if d.get(key):
                rows.append((title, sep.join(d[key])))
        for key, value in rows:
            print(f"{key:>22}: {value}")
        print()
