"""Package discovery for setuptools; every other piece of metadata is in pyproject.toml.

pyproject.toml alone cannot discover packages under a directory installed with another name: ``plugins/``
is the home of the built-in plugins but installs as ``crmsync_plugins``, never as a generic ``plugins``.
Discovery (not a hand-kept list) means a new sub-package or data folder cannot be left out of the wheel.
"""

from setuptools import find_namespace_packages, setup

#: Import name -> source directory.
ROOTS = {"connector_core": "connector_core", "crmsync_plugins": "plugins"}


def discover() -> list[str]:
    """Every package and data folder under each root, named by its import path."""
    packages = []
    for name, directory in ROOTS.items():
        found = find_namespace_packages(where=directory, exclude=["*__pycache__*"])
        packages += [name, *(f"{name}.{package}" for package in found)]
    return packages


setup(package_dir=ROOTS, packages=discover())
