"""A task virtualenv whose build was interrupted is noticed and rebuilt by the next run.

Airflow's virtualenv operator writes install_complete_marker.json only after pip has
finished, and deletes and rebuilds a cached virtualenv without it. The test lays out what an
interrupted build leaves (the folder with part of its packages and no marker) in a
temporary DP_PIPELINE_VENV_CACHE, so the repository's own cache stays intact. The rebuild
installs the pinned requirements again, about a minute with a warm pip cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faults_support import LIGHT_CONF
from support import REPOSITORY

pytestmark = pytest.mark.e2e

MARKER = "install_complete_marker.json"
REQUIREMENTS = REPOSITORY / "include/requirements-lifecycle.txt"


def requirements_list() -> list[str]:
    """Return the requirements as the operator's marker records them, which is the file
    without the trailing newline that Jinja drops when it renders the file."""
    return [REQUIREMENTS.read_text().rstrip("\n")]


def cached_virtualenv(cache: Path) -> Path:
    """Return the complete cached virtualenv built from the current requirements file."""
    for marker in sorted(cache.glob(f"venv-*/{MARKER}")):
        if json.loads(marker.read_text())["requirements_list"] == requirements_list():
            return marker.parent
    pytest.fail(f"no complete virtualenv for {REQUIREMENTS} in {cache}; run the DAG once")


def lay_out_interrupted_build(source: Path, cache: Path) -> Path:
    """Copy the folder of ``source`` with a tenth of its packages and without the marker."""
    target = cache / source.name
    target.mkdir(parents=True)
    for name in ("pyvenv.cfg", "requirements.txt"):
        shutil.copy2(source / name, target / name)
    shutil.copytree(source / "bin", target / "bin", symlinks=True)
    site_packages = next((source / "lib").glob("python3*/site-packages"))
    target_packages = target / site_packages.relative_to(source)
    target_packages.mkdir(parents=True)
    entries = sorted(site_packages.iterdir())
    for entry in entries[: len(entries) // 10]:
        if entry.is_dir():
            shutil.copytree(entry, target_packages / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, target_packages / entry.name)
    return target


@pytest.fixture
def cache(tmp_path):
    """A temporary virtualenv cache, removed at the end because a rebuilt one takes 2 GB."""
    folder = tmp_path / "venvs"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_interrupted_build_is_rebuilt(fault_stack, baseline_run, dag_test, cache):
    source = cached_virtualenv(Path(fault_stack.env["DP_PIPELINE_VENV_CACHE"]))
    half_built = lay_out_interrupted_build(source, cache)
    assert not (half_built / MARKER).exists()

    # The cache folder is a parse-time setting of the DAG, so the dags test process needs it.
    run = dag_test("half-built-venv", LIGHT_CONF, env={"DP_PIPELINE_VENV_CACHE": str(cache)})
    record = run.wait(timeout=900)

    assert record["state"] == "success", f"see {run.log_path}"
    log = run.log_text()
    assert f"Found a previous (probably partial installed) virtual environment in {half_built}" in (
        log
    ), "the operator did not notice the half-built virtualenv"
    assert f"New Python virtual environment created in {half_built}" in log
    assert log.count("New Python virtual environment created") == 1, "built more than once"
    marker = json.loads((half_built / MARKER).read_text())
    assert marker["requirements_list"] == requirements_list()
    assert (half_built / "bin/python").exists()
