"""``apt-ostree compose``: build OSTree commits from treefiles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..compose import DEFAULT_CACHEDIR
from ..errors import UsageError

if TYPE_CHECKING:
    from ..compose import pipeline


def _metadata_strings(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--add-metadata-string: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _output_path(args: argparse.Namespace, option: str) -> Path | None:
    """An output file option, checked before the long work that ends in writing it."""
    value = getattr(args, option.replace("-", "_"), None)
    if not value:
        return None
    path = Path(value)
    if not path.parent.is_dir():
        raise UsageError(f"--{option}: {path.parent}: no such directory")
    if path.is_dir():
        raise UsageError(f"--{option}: {path} is a directory")
    return path


def _options(args: argparse.Namespace) -> pipeline.ComposeOptions:
    from ..compose import pipeline

    return pipeline.ComposeOptions(
        repo=Path(args.repo) if getattr(args, "repo", None) else None,
        cachedir=Path(args.cachedir) if getattr(args, "cachedir", None) else None,
        workdir=Path(args.workdir) if getattr(args, "workdir", None) else None,
        lockfile=Path(args.lockfile) if getattr(args, "lockfile", None) else None,
        write_lockfile_to=_output_path(args, "write-lockfile-to"),
        write_commitid_to=_output_path(args, "write-commitid-to"),
        dry_run=getattr(args, "dry_run", False),
        force_nocache=getattr(args, "force_nocache", False),
        cache_only=getattr(args, "cache_only", False),
        extra_metadata=_metadata_strings(getattr(args, "add_metadata_string", None) or []),
    )


def _add_fetch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cachedir", metavar="DIR",
                   help=f"package lists and downloaded .debs, reused between composes "
                        f"(default {DEFAULT_CACHEDIR})")
    p.add_argument("--lockfile", metavar="FILE", help="compose exactly the versions in FILE")
    p.add_argument("--cache-only", "-C", action="store_true",
                   help="do not update the package lists; use the cached ones")


def _add_commit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", metavar="REPO", required=True,
                   help="OSTree repository (created in archive mode if missing)")
    p.add_argument("--add-metadata-string", metavar="KEY=VALUE", action="append",
                   help="extra commit metadata (repeatable)")
    p.add_argument("--write-commitid-to", metavar="FILE", help="write the commit checksum to FILE")


def cmd_tree(args: argparse.Namespace) -> int:
    from ..compose import pipeline
    from ..compose.treefile import load_treefile
    from ..progress import make_reporter

    treefile = load_treefile(args.treefile)
    if args.print_only:
        json.dump(treefile.to_json(), sys.stdout, indent=2)
        print()
        return 0
    if not args.repo and not args.dry_run:
        raise UsageError("compose tree: --repo is required (unless --dry-run or --print-only)")
    opts = _options(args)
    result = pipeline.compose_tree(treefile, opts, make_reporter())
    if args.dry_run:
        for p in result.packages:
            print(f"{p.name}\t{p.version}\t{p.architecture}")
        print(f"{len(result.packages)} packages; input hash {result.inputhash}", file=sys.stderr)
        return 0
    print(f"Wrote commit {result.commit} ({treefile.ref}, version {result.version}, "
          f"{len(result.packages)} packages)")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from ..compose import pipeline
    from ..compose.treefile import load_treefile
    from ..progress import make_reporter

    treefile = load_treefile(args.treefile)
    dest = Path(args.destdir)
    packages = pipeline.install(treefile, dest / "rootfs", _options(args), make_reporter())
    print(f"Installed {len(packages)} packages into {dest / 'rootfs'}")
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    from ..compose import pipeline
    from ..compose.treefile import load_treefile
    from ..progress import make_reporter

    treefile = load_treefile(args.treefile) if args.treefile else None
    pipeline.postprocess(Path(args.rootfs), treefile, make_reporter())
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    from ..compose import pipeline
    from ..compose.treefile import load_treefile
    from ..ostree import Repo
    from ..progress import make_reporter

    treefile = load_treefile(args.treefile)
    opts = _options(args)
    pipeline.check_adapted(Path(args.rootfs))  # before creating the repository
    repo = Repo.open(args.repo, create=True)
    result = pipeline.commit(treefile, Path(args.rootfs), repo, opts, make_reporter())
    print(f"Wrote commit {result.commit} ({treefile.ref}, version {result.version})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    compose = sub.add_parser("compose", help="build OSTree commits from treefiles",
                             description="Build OSTree commits from treefiles (YAML).")
    csub = compose.add_subparsers(dest="compose_command", metavar="STEP")
    csub.required = True

    p = csub.add_parser("tree", help="compose a treefile into a commit",
                        description="Resolve and fetch the treefile's packages, build the root "
                                    "filesystem, adapt it to OSTree and commit it on the "
                                    "treefile's ref. Exits 77 when nothing changed.")
    p.add_argument("treefile", metavar="TREEFILE")
    p.add_argument("--repo", metavar="REPO",
                   help="OSTree repository (created in archive mode if missing)")
    _add_fetch_options(p)
    p.add_argument("--workdir", metavar="DIR", help="where to build (default /var/tmp)")
    p.add_argument("--write-lockfile-to", metavar="FILE",
                   help="write the resolved package versions to FILE")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve and print the package set; commit nothing")
    p.add_argument("--print-only", action="store_true",
                   help="print the fully expanded treefile as JSON and exit")
    p.add_argument("--add-metadata-string", metavar="KEY=VALUE", action="append",
                   help="extra commit metadata (repeatable)")
    p.add_argument("--write-commitid-to", metavar="FILE", help="write the commit checksum to FILE")
    p.add_argument("--force-nocache", action="store_true",
                   help="commit even if the inputs have not changed")
    p.set_defaults(func=cmd_tree)

    p = csub.add_parser("install", help="install the treefile's packages into DESTDIR/rootfs")
    p.add_argument("treefile", metavar="TREEFILE")
    p.add_argument("destdir", metavar="DESTDIR")
    _add_fetch_options(p)
    p.set_defaults(func=cmd_install)

    p = csub.add_parser("postprocess",
                        help="apply the treefile's files and scripts, adapt ROOTFS to OSTree")
    p.add_argument("rootfs", metavar="ROOTFS")
    p.add_argument("treefile", metavar="TREEFILE", nargs="?")
    p.set_defaults(func=cmd_postprocess)

    p = csub.add_parser("commit", help="commit an adapted ROOTFS on the treefile's ref")
    p.add_argument("treefile", metavar="TREEFILE")
    p.add_argument("rootfs", metavar="ROOTFS")
    _add_commit_options(p)
    p.set_defaults(func=cmd_commit)
