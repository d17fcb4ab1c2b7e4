# Only the cffi extension lives here; metadata is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["native/build_ring.py:ffi"])
