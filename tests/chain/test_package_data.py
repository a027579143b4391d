"""Our ABIs are package data: a wheel built from this tree carries keeper/abi/, and the keeper
imported from that wheel, away from the repository, loads its own contracts."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from keeper.chain.contracts import ABI_DIR, ROOT


def test_an_installed_wheel_finds_its_abis(tmp_path):
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("keeper-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    want = {f"keeper/abi/{p.name}" for p in ABI_DIR.iterdir() if p.suffix == ".json" or p.name == "SOURCE_HASH"}
    assert want and want <= names
    code = ("import keeper.chain.contracts as C, pathlib; a = C.ours('KeeperVault'); "
            "print(pathlib.Path(C.__file__).parent.parent.parent, len(a.abi) > 0, a.bytecode[:2])")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    where, has_abi, prefix = run.stdout.split()
    assert where == str(tmp_path / "site") and has_abi == "True" and prefix == "0x"
