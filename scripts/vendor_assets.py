#!/usr/bin/env python3
"""Fetch the browser assets the rendered book needs offline, from the npm registry, into _vendor/.

    python scripts/vendor_assets.py          # idempotent; prints the size it added
    python scripts/vendor_assets.py --check  # exit 1 unless all assets are present

MathJax 3, RequireJS and the Jupyter widgets HTML manager (and mermaid) normally load from
CDNs when a page is viewed. With these local copies the book renders without a network
(a reader on a train, or CI's browser test): book/_ext/offline_assets.py points Sphinx at them
when _vendor/ exists, and leaves the CDN defaults otherwise. Only Python is needed: each
package's tarball is downloaded over HTTPS and checked against the sha512 integrity pinned
below before anything is extracted. _vendor/ is git-ignored (about 37 MB, not committed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "_vendor"
REGISTRY = "https://registry.npmjs.org/"

# name, version, sha512 integrity (from the registry), paths inside the package to keep, target folder
PACKAGES = [
    ("mathjax", "3.2.2",
     "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
     ["es5/"], "mathjax"),
    ("requirejs", "2.3.7",
     "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
     ["require.js"], "requirejs"),
    ("@jupyter-widgets/html-manager", "1.0.15",
     "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
     ["dist/"], "html-manager"),
    ("mermaid", "11.12.1",
     "sha512-UlIZrRariB11TY1RtTgUWp65tphtBv4CSq7vyS2ZZ2TgoMjs2nloq+wFqxiwcxlhHUvs7DPGgMjs2aeQxz5h9g==",
     ["dist/mermaid.esm.min.mjs", "dist/chunks/mermaid.esm.min/"], "mermaid"),
]

# What book/_ext/offline_assets.py looks for, relative to _vendor/
MARKERS = ["mathjax/es5/tex-mml-chtml.js", "requirejs/require.js", "html-manager/dist/embed-amd.js",
           "mermaid/dist/mermaid.esm.min.mjs"]


def _tarball_url(name: str, version: str) -> str:
    return f"{REGISTRY}{name}/-/{name.split('/')[-1]}-{version}.tgz"


def fetch(name: str, version: str, integrity: str, keep: list[str], target: str) -> int:
    destination = VENDOR / target
    stamp = destination / ".version"
    if stamp.exists() and stamp.read_text() == version:
        return 0
    with urllib.request.urlopen(_tarball_url(name, version), timeout=60) as response:
        payload = response.read()
    algorithm, expected = integrity.split("-", 1)
    got = base64.b64encode(hashlib.new(algorithm, payload).digest()).decode()
    if got != expected:
        raise SystemExit(f"{name}@{version}: integrity mismatch (expected {expected[:16]}..., got {got[:16]}...)")
    staging = VENDOR / f".{target}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    size = 0
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
        for member in archive.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else member.name  # strip "package/"
            if not member.isfile() or not any(inner == k or (k.endswith("/") and inner.startswith(k)) for k in keep):
                continue
            if inner.startswith("/") or ".." in Path(inner).parts:
                raise SystemExit(f"{name}: refusing unsafe path {member.name!r}")
            out = staging / inner
            out.parent.mkdir(parents=True, exist_ok=True)
            data = archive.extractfile(member).read()
            out.write_bytes(data)
            size += len(data)
    (staging / ".version").write_text(version)
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(staging, destination)  # the folder appears complete or not at all
    return size


def main() -> int:
    if "--check" in sys.argv:
        missing = [m for m in MARKERS if not (VENDOR / m).exists()]
        print("missing: " + ", ".join(missing) if missing else "all offline assets present")
        return 1 if missing else 0
    VENDOR.mkdir(exist_ok=True)
    total = 0
    for name, version, integrity, keep, target in PACKAGES:
        try:
            added = fetch(name, version, integrity, keep, target)
        except OSError as error:
            print(f"could not fetch {name}@{version} ({error}); the book will use the CDN for it")
            continue
        total += added
        print(f"{name}@{version}: {'up to date' if added == 0 else f'{added / 1e6:.1f} MB'}")
    print(f"_vendor/ holds {sum(p.stat().st_size for p in VENDOR.rglob('*') if p.is_file()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
