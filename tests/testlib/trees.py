"""Treefiles of the test trees."""

from __future__ import annotations

from pathlib import Path

BASE_REF = "debian/bookworm/x86_64/aot-test"


def base_treefile_data(files: Path) -> dict[str, object]:
    """The base test tree: every treefile feature, on minbase + aot-app.

    ``files`` (next to the treefile) receives the files that add-files names.
    """
    files.mkdir(parents=True, exist_ok=True)
    (files / "added.txt").write_text("added by the treefile\n")
    (files / "added.conf").write_text("# added into /etc by the treefile\n")
    return {
        "ref": BASE_REF,
        "packages": ["aot-app"],
        "add-files": [[f"{files.name}/added.txt", "/usr/share/aot-added/added.txt"],
                      [f"{files.name}/added.conf", "/etc/aot-added.conf"]],
        "remove-files": ["/usr/share/aot-lib/junk-*"],
        "units": ["aot-app.service"],
        "default-target": "aot-test.target",
        "postprocess": [
            "test -x /usr/bin/aot-app",
            "aot-app > /usr/share/aot-postprocess.txt",
        ],
        "metadata": {"aot.purpose": "integration test", "aot.number": 42},
    }
