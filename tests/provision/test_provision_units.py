"""What setup ships: the wheel's content hash equals the tree's; wheelhouse platform tags."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ops.package_identity import content_hash, wheel_content_hash
from ops.provision.install import _manylinux_platforms


def test_wheel_hash_equals_the_tree_hash(tmp_path: Path) -> None:
    pkg = tmp_path / "ops"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "m.py").write_text("y = 2\n")
    (pkg / "requirements.lock").write_text("a==1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel in ("__init__.py", "sub/m.py", "requirements.lock"):
            zf.write(pkg / rel, f"ops/{rel}")
        zf.writestr("x-0.1.dist-info/RECORD", "")
    assert wheel_content_hash(wheel) == content_hash(pkg)
    (pkg / "sub" / "m.py").write_text("y = 3\n")
    assert wheel_content_hash(wheel) != content_hash(pkg)


def test_manylinux_tags_for_the_servers_glibc() -> None:
    tags = _manylinux_platforms("x86_64", ("glibc", "2.36"))
    assert "manylinux_2_36_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags and tags[0] == "linux_x86_64"
