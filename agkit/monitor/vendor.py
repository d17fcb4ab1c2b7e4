"""Build step: install the dashboard's JavaScript dependencies with npm and vendor them.

    python -m agkit.monitor.vendor          # npm ci in a scratch dir, copy into static/
    python -m agkit.monitor.vendor --check  # exit 1 if static/ differs from what npm gives

The versions are pinned in agkit/monitor/web/package.json and package-lock.json (with
integrity hashes). The copied files (uPlot's minified IIFE build, its CSS and LICENSE)
are committed in agkit/monitor/static/ as build artifacts, so an installed agkit serves
the dashboard offline: nothing is ever loaded from a CDN.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
STATIC = HERE / "static"
FILES = {
    "node_modules/uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "node_modules/uplot/dist/uPlot.min.css": "uPlot.min.css",
    "node_modules/uplot/LICENSE": "uPlot.LICENSE",
}


def build(check: bool = False) -> int:
    npm = shutil.which("npm")
    if npm is None:
        sys.stderr.write("agkit.monitor.vendor: npm is not installed\n")
        return 1
    with tempfile.TemporaryDirectory(prefix="agkit-vendor-") as tmp:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(WEB / name, Path(tmp) / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=tmp, check=True)
        differs = []
        for src, dst in FILES.items():
            if check:
                if not (STATIC / dst).exists() or not filecmp.cmp(Path(tmp) / src, STATIC / dst, shallow=False):
                    differs.append(dst)
            else:
                shutil.copy(Path(tmp) / src, STATIC / dst)
                sys.stderr.write(f"vendored {dst}\n")
    if differs:
        sys.stderr.write(f"agkit.monitor.vendor: out of date: {', '.join(differs)}\n")
        return 1
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    sys.exit(build(ap.parse_args().check))


if __name__ == "__main__":
    main()
