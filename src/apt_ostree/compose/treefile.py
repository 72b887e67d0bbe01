"""The treefile: a YAML description of an OS tree, parsed and validated.

``load_treefile()`` reads a treefile and everything it includes, validates the
merged result (reporting every problem at once, each with its key path) and
returns a frozen ``Treefile``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import TreefileError

PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
REF_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
METADATA_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer|target|path|mount)$")


class Variant(enum.Enum):
    """mmdebstrap variants that apt-ostree can resolve itself."""

    ESSENTIAL = "essential"
    APT = "apt"
    REQUIRED = "required"
    MINBASE = "minbase"
    IMPORTANT = "important"
    STANDARD = "standard"

    def priorities(self) -> tuple[str, ...]:
        """Priorities whose packages the variant installs (besides Essential)."""
        return {
            Variant.ESSENTIAL: (),
            Variant.APT: (),
            Variant.REQUIRED: ("required",),
            Variant.MINBASE: ("required",),
            Variant.IMPORTANT: ("required", "important"),
            Variant.STANDARD: ("required", "important", "standard"),
        }[self]

    def wants_apt(self) -> bool:
        return self is not Variant.ESSENTIAL


# key -> (expected python type(s), human name).  Lists are checked per item.
LIST_OF_STR_KEYS = ("packages", "exclude-packages", "remove-files", "postprocess", "units")
SCALAR_STR_KEYS = ("ref", "version", "suite", "variant", "default-target")
KNOWN_KEYS = frozenset((*LIST_OF_STR_KEYS, *SCALAR_STR_KEYS,
                        "sources", "include", "add-files", "metadata"))
LIST_KEYS = (*LIST_OF_STR_KEYS, "sources", "add-files")


@dataclass(frozen=True)
class AddFile:
    source: Path          # absolute, resolved against the declaring treefile
    dest: str             # absolute path inside the tree

    def digest(self) -> str:
        return hashlib.sha256(self.source.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Treefile:
    path: Path
    ref: str
    version: str | None = None
    suite: str | None = None
    sources: tuple[str, ...] = ()
    variant: Variant = Variant.MINBASE
    packages: tuple[str, ...] = ()
    exclude_packages: tuple[str, ...] = ()
    add_files: tuple[AddFile, ...] = ()
    remove_files: tuple[str, ...] = ()
    postprocess: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    default_target: str | None = None
    metadata: Mapping[str, str | int | bool] = field(default_factory=dict)
    includes: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The fully expanded treefile (``compose tree --print-only``)."""
        return {
            "ref": self.ref,
            "version": self.version,
            "suite": self.suite,
            "sources": list(self.sources),
            "variant": self.variant.value,
            "packages": list(self.packages),
            "exclude-packages": list(self.exclude_packages),
            "add-files": [[str(a.source), a.dest] for a in self.add_files],
            "remove-files": list(self.remove_files),
            "postprocess": list(self.postprocess),
            "units": list(self.units),
            "default-target": self.default_target,
            "metadata": dict(self.metadata),
        }

    def hash_input(self) -> dict[str, Any]:
        """What the input hash covers: like to_json, but file contents not paths."""
        data = self.to_json()
        data["add-files"] = [[a.digest(), a.dest] for a in self.add_files]
        return data

    def canonical_json(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer",
            bool: "a boolean", float: "a number", type(None): "null"}.get(type(value),
                                                                        type(value).__name__)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise TreefileError(str(path), [f"cannot read: {e.strerror}"]) from e
    except UnicodeDecodeError as e:
        raise TreefileError(str(path), [f"not UTF-8 text (byte {e.start})"]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise TreefileError(str(path), [f"{where}invalid YAML: {problem}"]) from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TreefileError(str(path), [f"expected a mapping at the top level, got {_type_name(data)}"])
    return data


def _check(path: Path, data: dict[str, Any], problems: list[str]) -> None:
    """Check the types of one file's keys; append '<key path>: <problem>'."""
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append(f"{key}: unknown key")
    for key in SCALAR_STR_KEYS:
        if key in data and not isinstance(data[key], str):
            # An integer version is unambiguous; a float is not (YAML reads 2024.10 as 2024.1).
            if key == "version" and type(data[key]) is int:
                data[key] = str(data[key])
                continue
            hint = " (quote it)" if isinstance(data[key], float) else ""
            problems.append(f"{key}: expected a string, got {_type_name(data[key])}{hint}")
    for key in LIST_KEYS:
        if key in data and not isinstance(data[key], list):
            problems.append(f"{key}: expected a list, got {_type_name(data[key])}")
    for key in LIST_OF_STR_KEYS:
        for i, item in enumerate(data.get(key) or []) if isinstance(data.get(key), list) else ():
            if not isinstance(item, str):
                problems.append(f"{key}[{i}]: expected a string, got {_type_name(item)}")
    if isinstance(data.get("sources"), list):
        for i, item in enumerate(data["sources"]):
            if isinstance(item, dict):
                for k, v in item.items():
                    # YAML turns deb822's yes/no (Trusted, Enabled) into booleans.
                    if not isinstance(v, (str, list, bool)):
                        problems.append(f"sources[{i}].{k}: expected a string or list")
                    for j, word in enumerate(v) if isinstance(v, list) else ():
                        if not isinstance(word, str):
                            problems.append(f"sources[{i}].{k}[{j}]: expected a string, "
                                            f"got {_type_name(word)}")
            elif not isinstance(item, str):
                problems.append(f"sources[{i}]: expected a source line or a deb822 mapping, "
                                f"got {_type_name(item)}")
    if isinstance(data.get("add-files"), list):
        for i, item in enumerate(data["add-files"]):
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(x, str) for x in item)):
                problems.append(f"add-files[{i}]: expected [source, destination]")
    if "include" in data and not isinstance(data["include"], (str, list)):
        problems.append(f"include: expected a path or a list of paths, got {_type_name(data['include'])}")
    if "metadata" in data:
        if not isinstance(data["metadata"], dict):
            problems.append(f"metadata: expected a mapping, got {_type_name(data['metadata'])}")
        else:
            for k, v in data["metadata"].items():
                if not isinstance(k, str) or not METADATA_KEY_RE.match(k):
                    problems.append(f"metadata.{k}: invalid key")
                elif not isinstance(v, (str, int, bool)):
                    problems.append(f"metadata.{k}: expected a string, integer or boolean")


def _render_source(item: str | dict[str, Any]) -> str:
    if isinstance(item, dict):
        lines = []
        for k, v in item.items():
            if isinstance(v, bool):
                value = "yes" if v else "no"
            else:
                value = " ".join(v) if isinstance(v, list) else str(v)
            lines.append(f"{k}: {value}")
        return "\n".join(lines)
    return item.strip()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge an included treefile (base) with the including one (over)."""
    out = dict(base)
    for key, value in over.items():
        if key in LIST_KEYS and isinstance(out.get(key), list) and isinstance(value, list):
            merged = list(out[key])
            for item in value:
                if item not in merged:
                    merged.append(item)
            out[key] = merged
        elif key == "metadata" and isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _load_raw(path: Path, stack: tuple[Path, ...], problems: list[str],
              files: list[Path]) -> dict[str, Any]:
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(p.name for p in (*stack, path))
        raise TreefileError(str(stack[0]), [f"include: cycle: {chain}"])
    data = _read_yaml(path)
    files.append(path)
    own: list[str] = []
    _check(path, data, own)
    problems.extend(f"{path.name}: {p}" if stack else p for p in own)
    # Resolve add-files sources against the file that declares them.
    if isinstance(data.get("add-files"), list):
        data["add-files"] = [
            [str((path.parent / item[0]).resolve()), item[1]] if isinstance(item, list)
            and len(item) == 2 and isinstance(item[0], str) else item
            for item in data["add-files"]
        ]
    includes = data.pop("include", None)
    merged: dict[str, Any] = {}
    if isinstance(includes, (str, list)):
        for inc in [includes] if isinstance(includes, str) else includes:
            if not isinstance(inc, str):
                problems.append(f"include: expected a path, got {_type_name(inc)}")
                continue
            merged = _merge(merged, _load_raw(path.parent / inc, (*stack, path), problems, files))
    return _merge(merged, data)


def host_sources(etc_apt: Path = Path("/etc/apt")) -> list[str]:
    """This machine's apt sources, one entry per line or deb822 stanza."""
    out: list[str] = []
    files = []
    if (etc_apt / "sources.list").is_file():
        files.append(etc_apt / "sources.list")
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        lines = [ln for ln in f.read_text().splitlines() if not ln.lstrip().startswith("#")]
        if f.suffix == ".list":
            out += [ln.strip() for ln in lines if ln.strip()]
        else:
            for stanza in "\n".join(lines).split("\n\n"):
                body = "\n".join(ln.rstrip() for ln in stanza.splitlines() if ln.strip())
                if body and not re.search(r"^Enabled:\s*no\s*$", body, re.M | re.I):
                    out.append(body)
    return out


def host_suite(os_release: Path = Path("/etc/os-release")) -> str | None:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def load_treefile(path: str | Path) -> Treefile:
    """Read, merge and validate a treefile; raise TreefileError with all problems."""
    top = Path(path)
    problems: list[str] = []
    files: list[Path] = []
    data = _load_raw(top, (), problems, files)
    ref = data.get("ref")
    if "ref" not in data:
        problems.append("ref: required key is missing")
    elif isinstance(ref, str) and not REF_RE.match(ref):
        problems.append(f"ref: {ref!r} is not a valid OSTree ref")
    variant = Variant.MINBASE
    if isinstance(data.get("variant"), str):
        try:
            variant = Variant(data["variant"])
        except ValueError:
            choices = ", ".join(v.value for v in Variant)
            problems.append(f"variant: unknown variant {data['variant']!r} (one of: {choices})")
    for key in ("packages", "exclude-packages"):
        for i, name in enumerate(data.get(key) or []) if isinstance(data.get(key), list) else ():
            if isinstance(name, str) and not PACKAGE_RE.match(name):
                problems.append(f"{key}[{i}]: {name!r} is not a valid package name")
    for i, item in enumerate(data.get("add-files") or []) if isinstance(data.get("add-files"), list) else ():
        if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
            if not Path(item[0]).is_file():
                problems.append(f"add-files[{i}]: source {item[0]} does not exist")
            if not item[1].startswith("/") or ".." in Path(item[1]).parts:
                problems.append(f"add-files[{i}]: destination {item[1]!r} "
                                "must be an absolute path inside the tree")
    removes = data.get("remove-files")
    for i, p in enumerate(removes) if isinstance(removes, list) else ():
        if isinstance(p, str) and (".." in Path(p).parts or p.strip("/") == ""):
            problems.append(f"remove-files[{i}]: {p!r} must be a path inside the tree")
    for i, u in enumerate(data.get("units") or []) if isinstance(data.get("units"), list) else ():
        if isinstance(u, str) and not UNIT_RE.match(u):
            problems.append(f"units[{i}]: {u!r} is not a systemd unit name")
    if isinstance(data.get("default-target"), str) and not data["default-target"].endswith(".target"):
        problems.append(f"default-target: {data['default-target']!r} is not a .target unit")
    if problems:
        raise TreefileError(str(top), problems)

    sources = data.get("sources")
    rendered = [_render_source(s) for s in sources] if sources else host_sources()
    if not rendered:
        raise TreefileError(str(top), ["sources: none given and this machine has no apt sources"])
    return Treefile(
        path=top.resolve(),
        ref=data["ref"],
        version=data.get("version"),
        suite=data.get("suite") or host_suite(),
        sources=tuple(rendered),
        variant=variant,
        packages=tuple(data.get("packages") or ()),
        exclude_packages=tuple(data.get("exclude-packages") or ()),
        add_files=tuple(AddFile(Path(s), d) for s, d in data.get("add-files") or ()),
        remove_files=tuple(data.get("remove-files") or ()),
        postprocess=tuple(data.get("postprocess") or ()),
        units=tuple(data.get("units") or ()),
        default_target=data.get("default-target"),
        metadata=dict(data.get("metadata") or {}),
        includes=tuple(files[1:]),
    )
