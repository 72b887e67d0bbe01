"""apt-ostreed, the D-Bus system service (org.aptostree1).

``daemon.service`` holds the bus interfaces and the transaction queue,
``daemon.transaction`` runs one transaction, ``daemon.polkit`` authorizes,
``daemon.verbs`` is the table of mutating verbs shared with the CLI client.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apt-ostreed",
                                     description="The apt-ostree system service (D-Bus: org.aptostree1).")
    parser.add_argument("--sysroot", default="/", metavar="DIR",
                        help="serve the sysroot at DIR (default /)")
    parser.add_argument("--config", default="/etc/apt-ostreed.conf", metavar="FILE",
                        help="configuration file (default /etc/apt-ostreed.conf)")
    parser.add_argument("--debug", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="apt-ostreed: %(levelname)s: %(message)s", stream=sys.stderr)
    from .service import serve

    try:
        return serve(Path(args.sysroot).resolve(), Path(args.config))
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # one line, as every other error
        if args.debug:
            raise
        print(f"apt-ostreed: error: {e}", file=sys.stderr)
        return 1
