"""The agent's wheel, made on the laptop from whatever ``mmops`` runs from:

  * a project checkout (an editable install: ``pyproject.toml`` next to the package) — built
    from the sources with the project's build backend (``python -m build``, or ``pip wheel``
    where the build tool is not installed);
  * an installed package (``pip install``/``pipx install`` of the wheel, no checkout on disk)
    — repacked from the installed distribution itself: the files its RECORD lists (``ops/…``,
    the lock file included) and its metadata (dependencies, entry points), packed by the
    ``wheel`` tool, which writes a fresh RECORD. The server then runs exactly the code the
    laptop runs, with the same pins (``ops/requirements.lock`` travels inside).
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from ..errors import ConfigError, RemoteError
from ..package_identity import package_dir
from ..process import run_command

DISTRIBUTION = "markdown-manager-ops"
# dist-info files pip writes at install time: not part of the wheel that was installed.
_INSTALL_ONLY = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def _run(argv: list[str], what: str) -> None:
    # pip and build need the operator's environment (HOME, proxies, pip config).
    try:
        res = run_command(argv, env=dict(os.environ), check=False, timeout=600)
    except ConfigError as exc:
        raise RemoteError(f"Preparing the agent for the server failed: {exc}") from exc
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RemoteError(f"{what} failed: {tail}")


def checkout_root() -> Path | None:
    """The project checkout the running package comes from, if it comes from one."""
    root = package_dir().parent
    return root if (root / "pyproject.toml").is_file() else None


def build_agent_wheel(out_dir: Path) -> Path:
    """One wheel of this package in ``out_dir``, from the checkout or the installed files."""
    root = checkout_root()
    if root is not None:
        _build_from_checkout(root, out_dir)
    else:
        _repack_installed(out_dir)
    wheels = sorted(out_dir.glob("*.whl"))
    if not wheels:
        raise RemoteError("Building the agent wheel failed: no wheel was written.")
    return wheels[-1]


def _build_from_checkout(root: Path, out_dir: Path) -> None:
    try:
        import build  # noqa: F401
    except ImportError:  # a checkout installed without the test tools: pip builds it too
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
              "--disable-pip-version-check", "--wheel-dir", str(out_dir), str(root)],
             "Building the agent wheel")
        return
    argv = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out_dir), str(root)]
    try:
        import hatchling  # noqa: F401

        argv.insert(4, "--no-isolation")
    except ImportError:
        pass
    _run(argv, "Building the agent wheel")


def _repack_installed(out_dir: Path) -> None:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise RemoteError(
            f"Cannot build the agent wheel: {package_dir()} is neither a project checkout nor "
            f"an installed {DISTRIBUTION}.",
            hint=f"Install it with pip (pip install {DISTRIBUTION}) or run mmops from the "
            "project checkout.") from exc
    version = dist.version
    unpacked = out_dir / "unpacked" / f"{DISTRIBUTION.replace('-', '_')}-{version}"
    copied = 0
    for file in dist.files or []:
        parts = file.parts
        if file.suffix in (".pyc", ".pyo") or "__pycache__" in parts:
            continue
        top = parts[0]
        if top == "ops" or (top.endswith(".dist-info") and parts[-1] not in _INSTALL_ONLY):
            source = Path(str(file.locate()))
            if not source.is_file():
                raise RemoteError(f"The installed {DISTRIBUTION} is incomplete: {source} is "
                                  "missing; reinstall it.")
            target = unpacked.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied += 1
    if not (unpacked / "ops" / "__init__.py").is_file():
        raise RemoteError(f"Cannot build the agent wheel: the installed {DISTRIBUTION} lists "
                          "no ops/ files (an editable install outside its checkout?).",
                          hint="Reinstall it with pip, or run mmops from the project checkout.")
    _run([sys.executable, "-m", "wheel", "pack", "--dest-dir", str(out_dir), str(unpacked)],
         "Repacking the installed package as the agent wheel")
    shutil.rmtree(out_dir / "unpacked")
