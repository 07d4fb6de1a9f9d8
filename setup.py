"""Puts the repository's site templates and static files into the wheel, inside the package.

A checkout keeps `templates/` and `static/` at the top level, beside `atlas/`; an installed
package (pip install . or pip install git+URL) has no repository around it, so the wheel
carries copies at atlas/site/templates and atlas/site/static, where atlas.site.write looks first.
Everything else about the package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SITE_FOLDERS = ("templates", "static")


class BuildWithSiteFiles(build_py):
    def run(self) -> None:
        super().run()
        for name in SITE_FOLDERS:
            shutil.copytree(ROOT / name, Path(self.build_lib) / "atlas" / "site" / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithSiteFiles})
