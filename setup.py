"""Build glue that pyproject.toml cannot express statically.

The project metadata lives in pyproject.toml. This file only lists the packages: ``engine`` and
``studio`` with their subpackages, plus the top-level ``assets/`` folder mapped to the importable
name ``prime_assets`` (with every file under it as package data), so that bundled models are
found after a regular, non-editable ``pip install .`` via ``importlib.resources``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["engine", "engine.*", "studio", "studio.*"]), "prime_assets"],
    package_dir={"prime_assets": "assets"},
    package_data={"prime_assets": ["**/*"]},
)
