#!/usr/bin/env python3
"""Build a release of app/ for one target Python and platform, on the controller.

    build_release.py --source app --out .cache/releases --python 3.13.5 --arch x86_64

A release is one deterministic tar.gz: the app's wheel, a wheelhouse holding
every pinned dependency of requirements.lock (binary wheels for the target's
CPython ABI and manylinux platform, each checked against the lock's hashes by
pip), the lock itself and SHA256SUMS. Hosts install it with --no-index
--require-hashes: they never reach PyPI.

The lock may hold pins with environment markers (app/requirements-markers.lock);
pip would judge them against the controller's Python, so they are judged here
against the target's full version (Debian 12's 3.11.2 needs a pin 3.11.7 does
not) and the release carries a marker-free lock for exactly its target.

The release id is <project version>-<first 12 hex of a hash of the sources>, so
an unchanged source tree reuses the archive already built (nothing changes on
hosts), and any change to the code or the lock makes a new release.
Prints one JSON object: {"version", "archive", "sha256", "reused"}.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

SOURCES = ("pyproject.toml", "requirements.lock", "README.md", "src")
MANYLINUX = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_31", "manylinux_2_34")


def source_hash(source: Path) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        root = source / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        sys.exit(f"build_release: {' '.join(argv[:4])} ... failed:\n{tail}")


def target_lock(text: str, python: str) -> str:
    """The lock with each marker judged for CPython `python` on Linux: kept pins lose the marker."""
    from packaging.markers import Marker

    major_minor = ".".join(python.split(".")[:2])
    env = {
        "python_version": major_minor,
        "python_full_version": python,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    }
    out: list[str] = []
    keep = True
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement, _, marker = line.rstrip(" \\").partition(";")
            keep = not marker.strip() or Marker(marker.strip()).evaluate(env)
            if keep and marker.strip():
                line = requirement.rstrip() + " \\"
        if keep or line.startswith("#"):
            out.append(line)
    return "\n".join(out) + "\n"


def deterministic_tar(directory: Path, archive: Path) -> None:
    """Sorted entries, fixed owner and mtime: the same inputs give the same bytes."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False, filter=clean)
    tmp = archive.with_suffix(".tmp")
    with open(tmp, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    os.replace(tmp, archive)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--python", required=True, help="target CPython version, e.g. 3.13.5")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--keep", type=int, default=10, help="archives kept in --out")
    args = parser.parse_args()

    if not re.fullmatch(r"3\.\d{1,2}\.\d{1,3}", args.python):
        sys.exit(f"build_release: --python must look like 3.13.5, got {args.python!r}")
    source = args.source.resolve()
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    release = f"{version}-{source_hash(source)}"
    tag = "cp" + "".join(args.python.split(".")[:2])
    args.out.mkdir(parents=True, exist_ok=True)
    archive = (args.out / f"{name}-{release}-py{args.python}-{args.arch}.tar.gz").resolve()
    if archive.exists():
        print(json.dumps({"version": release, "archive": str(archive), "sha256": sha256(archive), "reused": True}))
        return 0

    with tempfile.TemporaryDirectory(prefix="platform-release-") as tmp:
        stage = Path(tmp) / "release"
        wheels = stage / "wheels"
        wheels.mkdir(parents=True)
        (stage / "requirements.lock").write_text(target_lock((source / "requirements.lock").read_text(), args.python))
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        platforms = [arg for p in MANYLINUX for arg in ("--platform", f"{p}_{args.arch}")]
        run(
            [
                *pip,
                "download",
                "--only-binary=:all:",
                "--no-deps",
                "--require-hashes",
                "--python-version",
                ".".join(args.python.split(".")[:2]),
                "--implementation",
                "cp",
                "--abi",
                tag,
                "--abi",
                "abi3",
                "--abi",
                "none",
                *platforms,
                "--platform",
                "any",
                "-r",
                str(stage / "requirements.lock"),
                "-d",
                str(wheels),
            ]
        )
        build = Path(tmp) / "build"
        shutil.copytree(
            source, build, ignore=shutil.ignore_patterns(".venv", "tests", "__pycache__", "*.egg-info", "build")
        )
        run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(build)])
        (stage / "RELEASE").write_text(
            json.dumps({"name": name, "version": release, "python": args.python, "arch": args.arch}, sort_keys=True)
            + "\n"
        )
        sums = "".join(f"{sha256(p)}  {p.relative_to(stage)}\n" for p in sorted(stage.rglob("*")) if p.is_file())
        (stage / "SHA256SUMS").write_text(sums)
        deterministic_tar(stage, archive)
    prune(args.out, args.keep, archive)
    print(json.dumps({"version": release, "archive": str(archive), "sha256": sha256(archive), "reused": False}))
    return 0


def prune(out: Path, keep: int, current: Path) -> None:
    """Keep the newest `keep` archives of the controller's cache (and always `current`)."""
    archives = sorted(out.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        if old != current:
            old.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


if __name__ == "__main__":
    sys.exit(main())
