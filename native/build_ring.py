"""cffi builder for agkit._ring (out-of-line API mode).

setup.py names `ffi` in `cffi_modules`, so `pip install .` and
`python setup.py build_ext --inplace` compile it; `python native/build_ring.py`
builds it in place too (handy while editing the C).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2", "/fp:precise"]
else:
    # -ffp-contract=off: a fused multiply-add inside TwoSum/TwoProduct would silently
    # break the error-free transformations the rolling variance relies on.
    COMPILE_ARGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-ffp-contract=off"]


def make_ffi(native: str = "native") -> FFI:
    """The builder; `native` is where ring.c/ring.h live, as the build will see it."""
    builder = FFI()
    builder.cdef((HERE / "ring_cdef.h").read_text())
    builder.set_source(
        "agkit._ring",
        '#include "ring.h"',
        sources=[f"{native}/ring.c"],
        include_dirs=[native],
        depends=[f"{native}/ring.h"],
        extra_compile_args=COMPILE_ARGS,
    )
    return builder


# Relative to the project root: setuptools runs builders from there and wants relative
# source paths (absolute ones end up outside build/ and in the sdist manifest).
ffi = make_ffi()

if __name__ == "__main__":
    # ffi.compile() works inside its tmpdir, so this one gets absolute paths; only the
    # extension lands next to the sources, as with `setup.py build_ext --inplace`.
    root = HERE.parent
    built = Path(make_ffi(str(HERE)).compile(tmpdir=str(root / "build" / "cffi"), verbose=True))
    dest = root / "agkit" / built.name
    shutil.copy2(built, dest)
    print(f"built {dest}")
