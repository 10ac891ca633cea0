"""The wheel built from this repository works outside the checkout.

The wheel is installed into a fresh virtual environment in a temporary directory (no pip in it, nothing from the
checkout on its path); its dependencies, already installed in the project's environment, are reached through one
``.pth`` line, so the test needs no network and little CPU. From there ``reproducer --version`` and a real
``render`` of a golden spec run, and the rendered files must equal the golden ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from reproducer import __version__

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DISTRIBUTION = "valkey-reproducer"


def _build_wheel(out: Path, **environ: str) -> Path:
    """The wheel of this checkout, built into ``out`` (no build isolation: hatchling is a test extra)."""
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)]
    env = {**os.environ, **environ}
    subprocess.run(argv, check=True, capture_output=True, timeout=120, cwd=out, env=env)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once per module."""
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding only the wheel; the project's site-packages serve the dependencies."""
    home = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=60)
    python = home / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, timeout=120)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.check_output([python, "-c", purelib], text=True).strip())
    # Appended after the venv's own site-packages: the wheel's reproducer wins over the checkout's editable one,
    # whose .pth hook is not run (only .pth files of site directories are).
    (site / "zz_project_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return home


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(venv / "bin" / "reproducer"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_wheel_is_named_for_the_index_and_carries_its_data(wheel: Path) -> None:
    assert wheel.name.startswith("valkey_reproducer-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reproducer/cli.py" in names and "reproducer/_data/templates/aws/main.tf.j2" in names
    assert any(n.startswith("reproducer/_data/playbooks/") for n in names)
    assert not any(n.startswith(("tests/", "docs/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Name: {DISTRIBUTION}\n" in text and "Requires-Dist: python-terraform==0.10.1" in text
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "reproducer = reproducer.cli:main" in entry_points


COMPILED_READER = "reproducer/data/_speedups" + sysconfig.get_config_var("EXT_SUFFIX")


def test_the_wheel_carries_the_compiled_snapshot_reader_and_its_platform_tag(wheel: Path) -> None:
    assert COMPILED_READER in zipfile.ZipFile(wheel).namelist()
    assert f"-cp{sys.version_info[0]}{sys.version_info[1]}-" in wheel.name and "-none-any" not in wheel.name


def test_without_a_c_compiler_the_wheel_is_pure_python(tmp_path: Path) -> None:
    built = _build_wheel(tmp_path, CC="false")
    names = zipfile.ZipFile(built).namelist()
    assert built.name.endswith("-py3-none-any.whl"), built.name
    assert "reproducer/data/snapshot.py" in names and not any(n.endswith(".so") for n in names)


def test_the_installed_wheel_reads_snapshots_with_its_own_compiled_reader(fresh_venv: Path, tmp_path: Path) -> None:
    probe = "from reproducer.data import snapshot, _speedups as c; print(snapshot._scan is c.small_run, c.__file__)"
    out = subprocess.check_output([fresh_venv / "bin" / "python", "-c", probe], text=True, cwd=tmp_path).split()
    assert out[0] == "True" and out[1].startswith(str(fresh_venv)), out


def test_installed_wheel_runs_version_and_render_outside_the_checkout(fresh_venv: Path, tmp_path: Path) -> None:
    where = subprocess.check_output(
        [fresh_venv / "bin" / "python", "-c", "import reproducer; print(reproducer.__file__)"], text=True, cwd=tmp_path
    )
    assert where.startswith(str(fresh_venv)), where  # the wheel's copy, not the checkout's

    version = _run(fresh_venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"reproducer, version {__version__}", version

    spec = tmp_path / "spec.yaml"
    spec.write_bytes((GOLDEN / "specs" / "business.yaml").read_bytes())
    rendered = _run(fresh_venv, "render", "--target", "selfmanaged", "--spec", str(spec), "--out", "out", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    golden = GOLDEN / "selfmanaged" / "business"
    expected = {p.relative_to(golden): p.read_bytes() for p in golden.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    written = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written.pop(Path(".reproducer-manifest.json"))
    assert written == expected


def test_shell_completion_prints_a_bash_script(fresh_venv: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{fresh_venv / 'bin'}:/usr/bin:/bin", "_REPRODUCER_COMPLETE": "bash_source"}
    script = subprocess.run(
        [fresh_venv / "bin" / "reproducer"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "_reproducer_completion()" in script and "complete -o nosort -F _reproducer_completion reproducer" in script
    words = {**env, "_REPRODUCER_COMPLETE": "bash_complete", "COMP_WORDS": "reproducer ren", "COMP_CWORD": "1"}
    completed = subprocess.run(
        [fresh_venv / "bin" / "reproducer"], env=words, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert completed.split() == ["plain,render"]
