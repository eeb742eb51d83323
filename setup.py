"""Builds kimlabel's C helpers (periodic padding, shared neighbour lists); the rest is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("kimlabel._neighbours", ["kimlabel/_neighbours.c"], extra_compile_args=["-O3"])])
