"""The test package set: tiny real packages that exercise what a compose must handle.

``aot-app`` depends on ``aot-lib``, has preinst/postinst scripts, a conffile
under /etc, content under /var, a systemd unit and a target; ``aot-broken``
depends on a package that exists nowhere, ``aot-chain`` on ``aot-broken``,
``aot-needs-new-lib`` on a version of ``aot-lib`` that does not exist;
the postinst of ``aot-failing-postinst`` fails.  ``UPDATE_PACKAGES`` hold a newer
``aot-app`` for upgrade and diff tests.
"""

from __future__ import annotations

from .debs import DebFile, DebSpec

APP_UNIT = """\
[Unit]
Description=apt-ostree test service

[Service]
Type=oneshot
ExecStart=/usr/bin/aot-app

[Install]
WantedBy=aot-test.target
"""

TEST_TARGET = """\
[Unit]
Description=apt-ostree test target
AllowIsolate=yes
"""

PREINST = 'mkdir -p /usr/share/aot-app\necho "preinst $1" > /usr/share/aot-app/preinst-ran\n'

# Runs with the conffile in place; leaves a marker under /usr and state under /var.
POSTINST = """\
if [ "$1" = configure ]; then
    test -f /etc/aot-app/app.conf
    echo "postinst $1" > /usr/share/aot-app/postinst-ran
    mkdir -p /var/lib/aot-app/generated
    echo "made by postinst" > /var/lib/aot-app/generated/by-postinst
fi
"""


def app(version: str) -> DebSpec:
    return DebSpec(
        name="aot-app",
        version=version,
        depends=("aot-lib (>= 1.0)",),
        files={
            "/etc/aot-app/app.conf": f"# aot-app configuration\nversion = {version}\n",
            "/usr/bin/aot-app": DebFile(f"#!/bin/sh\necho 'aot-app {version}'\n", 0o755),
            "/usr/lib/systemd/system/aot-app.service": APP_UNIT,
            "/usr/lib/systemd/system/aot-test.target": TEST_TARGET,
            "/var/lib/aot-app/state.txt": f"initial state of aot-app {version}\n",
        },
        dirs=("/var/lib/aot-app/cache", "/var/log/aot-app"),
        scripts={"preinst": PREINST, "postinst": POSTINST},
    )


LIB = DebSpec(
    name="aot-lib",
    files={
        "/usr/share/aot-lib/lib.txt": "aot-lib 1.0\n",
        # Targets for the treefile's remove-files (a glob).
        "/usr/share/aot-lib/junk-1.txt": "junk\n",
        "/usr/share/aot-lib/junk-2.txt": "junk\n",
    },
)

EXTRA = DebSpec(name="aot-extra", files={"/usr/share/aot-extra/extra.txt": "extra\n"})

BROKEN = DebSpec(name="aot-broken", depends=("aot-missing-dependency",),
                 files={"/usr/share/aot-broken/broken.txt": "never installed\n"})

# Broken one step further down, and on a version that does not exist.
CHAIN = DebSpec(name="aot-chain", depends=("aot-broken",))
NEEDS_NEW_LIB = DebSpec(name="aot-needs-new-lib", depends=("aot-lib (>= 5.0)",))

# Installs, then its postinst fails (saying why first).
FAILING_POSTINST = DebSpec(name="aot-failing-postinst", scripts={
    "postinst": 'echo "aot-failing-postinst: cannot configure: marker-91" >&2\nexit 7\n'})

BASE_PACKAGES = (LIB, app("1.0"), EXTRA, BROKEN, CHAIN, NEEDS_NEW_LIB, FAILING_POSTINST)
UPDATE_PACKAGES = (app("2.0"),)
