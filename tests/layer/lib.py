"""Helpers and test packages of the layering tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from testlib.debs import DebFile, DebSpec

CLI = [str(Path(__file__).resolve().parents[2] / ".venv/bin/apt-ostree")]
ENV = {**os.environ, "OSTREE_SYSROOT_DEBUG": "mutable-deployments"}
REF = "test/layering"
MARKER = "appended-in-place-by-aot-layer"
HOST_MARKER = "/var/lib/aot-host-marker"  # created on the host by a test

LAYER_PACKAGES = [
    DebSpec("aot-layer-dep", files={"/usr/share/aot-layer-dep/data": "dep\n"}),
    DebSpec("aot-layer", depends=("aot-layer-dep",),
            files={"/usr/bin/aot-layer": DebFile("#!/bin/sh\necho layered-ok\n", 0o755),
                   "/etc/aot-layer.conf": "setting=1\n"},
            scripts={"postinst": f"#!/bin/sh\nset -e\necho {MARKER} >> /usr/share/base-files/motd\n"}),
    DebSpec("aot-layer-fail",
            scripts={"postinst": "#!/bin/sh\necho postinst-failure-marker >&2\nexit 3\n"}),
    # A slow build step (the daemon tests cancel and kill transactions during it).
    DebSpec("aot-layer-slow", files={"/usr/share/aot-layer-slow/data": "slow\n"},
            scripts={"postinst": "#!/bin/sh\nsleep 3\n"}),
    # Adds files only (a program, a default config file, /var content): apply-live material.
    DebSpec("aot-live", files={"/usr/bin/aot-live": DebFile("#!/bin/sh\necho live-ok\n", 0o755),
                               "/etc/aot-live.conf": "mode=default\n",
                               "/var/lib/aot-live/seed": "seed\n"}),
    # In the base tree: a leaf, and a library with a user.
    DebSpec("aot-base-extra", version="1.0", files={"/usr/share/aot-base-extra/v": "1.0\n"}),
    DebSpec("aot-base-extra", version="1.5", files={"/usr/share/aot-base-extra/v": "1.5\n"}),
    DebSpec("aot-base-lib", files={"/usr/share/aot-base-lib/lib": "lib\n"}),
    DebSpec("aot-base-user", depends=("aot-base-lib",), files={"/usr/share/aot-base-user/u": "u\n"}),
    # Layering candidates that touch the base.
    DebSpec("aot-conflicts", extra_control={"Conflicts": "aot-base-extra"}),
    DebSpec("aot-adduser", depends=("adduser",),
            scripts={"postinst": "#!/bin/sh\nset -e\n"
                                 "adduser --system --group --no-create-home --quiet aotsvc\n"}),
    # Reports what its maintainer script can see: network interfaces, a host file.
    DebSpec("aot-probe", scripts={"postinst": "#!/bin/sh\nset -e\nmkdir -p /usr/share/aot-probe\n"
                                              "{ echo \"interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1"
                                              " | tr -d ' ' | tr '\\n' ' ')\"\n"
                                              f"  if [ -e {HOST_MARKER} ]; then echo host-visible;"
                                              " else echo host-hidden; fi\n"
                                              "} > /usr/share/aot-probe/report\n"}),
]
BASE_PACKAGES = ["aot-base-extra", "aot-base-user"]


def cli(sysroot: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--sysroot", str(sysroot), *map(str, args)], capture_output=True,
                          text=True, env=ENV)


def deployments(sysroot: Path) -> list[dict[str, object]]:
    proc = cli(sysroot, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout)["deployments"])


def deploy_dir(sysroot: Path, d: dict[str, object]) -> Path:
    return sysroot / f"ostree/deploy/{d['osname']}/deploy/{d['checksum']}.{d['serial']}"


def ostree(*args: str | Path) -> str:
    proc = subprocess.run(["ostree", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dpkg_versions(root: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-query", f"--admindir={root}/usr/share/dpkg/database", "-W",
                          "-f=${Package} ${Version} ${db:Status-Abbrev}\n"],
                         capture_output=True, text=True, check=True).stdout
    return {p[0]: p[1] for p in (line.split() for line in out.splitlines()) if p[2:] == ["ii"]}


