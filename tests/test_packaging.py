"""The distribution as a user installs it: one `lookalike` namespace, a wheel that carries the
web page and the migrations and runs on its own, and no import circles in the code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import grimp
import pytest

from tests.imagefactory import jpeg_bytes, png_bytes

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("lookalike.retrieval", "lookalike.services", cache_dir=None,
                              exclude_type_checking_imports=True)
    circles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if module < imported and graph.chain_exists(importer=imported, imported=module))
    assert circles == []


def test_every_package_folder_is_listed_for_setuptools() -> None:
    """Discovery does not follow package-dir, so a folder missing from the list would be left
    out of the wheel and of the editable install."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {"lookalike." + ".".join(init.parent.relative_to(ROOT).parts)
             for top in ("retrieval", "services", "migrations")
             for init in (ROOT / top).rglob("__init__.py")}
    assert found == listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, timeout=300)
    [built] = out.glob("lookalike-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_one_namespace_with_its_page_and_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    assert {n.split("/")[0] for n in code} == {"lookalike"}
    assert "lookalike/__init__.py" not in names
    for inside in ("lookalike/services/api/static/index.html",
                   "lookalike/services/api/static/js/main.js",
                   "lookalike/migrations/env.py", "lookalike/migrations/script.py.mako",
                   "lookalike/migrations/versions/0001_initial.py",
                   "lookalike/retrieval/models/registry.py",
                   "lookalike/services/cli/__main__.py"):
        assert inside in names, inside


@pytest.mark.slow
def test_installed_wheel_migrates_ingests_and_searches(wheel: Path, tmp_path: Path) -> None:
    """In a fresh venv holding only the wheel (the dependencies come from this venv's
    site-packages on PYTHONPATH, whose .pth files, the editable install's, are not read)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"],
           "LOOKALIKE_HOME": str(tmp_path / "home")}
    env.pop("LOOKALIKE_DATABASE_URL", None)
    env.pop("LOOKALIKE_BROKER_URL", None)
    cli = [str(venv / "bin" / "python"), "-m", "lookalike.services.cli"]

    def run(*args: str) -> str:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    located = subprocess.run([cli[0], "-c", "import lookalike.services; "
                              "print(lookalike.services.__path__[0])"],
                             env=env, capture_output=True, text=True, check=True).stdout
    assert located.strip().startswith(target)
    assert "search" in run("--help")
    assert "revision" in run("init")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "astronaut.jpg").write_bytes(jpeg_bytes("astronaut"))
    (photos / "chelsea.png").write_bytes(png_bytes("chelsea"))
    assert "added 2" in run("ingest", str(photos))
    answer = json.loads(run("search", str(photos / "chelsea.png"), "-k", "1", "--json"))
    assert answer["results"][0]["source"].endswith("chelsea.png")
