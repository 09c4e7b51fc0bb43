"""A throwaway Python environment layered over the test environment, for tests that pip-install.

``python -m venv --without-pip`` makes it in a fraction of a second; a ``.pth`` file adds the
test environment's site-packages as a site directory (its own ``.pth`` files, i.e. the editable
installs of segsync and the connectors, included). pip, segsync, pytest and the build backend
are thus importable without being copied, and whatever pip installs from inside it lands in
the throwaway environment only: the test environment is never changed, and deleting the folder
undoes everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ScratchEnv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def site_packages(self) -> Path:
        return Path(sysconfig.get_path("purelib", vars={"base": str(self.root), "platbase": str(self.root)}))

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """``python *args`` in this environment; every plugin enabled, no pip cache or index."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGSYNC_PLUGINS", "SEGSYNC_DISABLE", "PIP_"))}
        env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        return subprocess.run([self.python, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)

    def segsync(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return self.run("-m", "segsync", *args, cwd=cwd)


def make_scratch_env(root: Path) -> ScratchEnv:
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    env = ScratchEnv(root)
    parent = sysconfig.get_path("purelib")
    (env.site_packages / "_segsync_test_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf-8")
    assert env.site_packages != Path(parent), "the scratch environment must not be the test one"
    assert sys.prefix != str(root)
    return env
