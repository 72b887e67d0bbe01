"""apt-ostreed, the D-Bus system service (org.aptostree1).

The service itself is the subject of a later milestone; until it lands the
entry point says so and fails, rather than pretending to serve.
"""

from __future__ import annotations

import sys


def main() -> int:
    print("apt-ostreed: the D-Bus service is not available in this version; "
          "use 'apt-ostree --sysroot DIR' (direct mode)", file=sys.stderr)
    return 1
