"""Fixtures of the interoperability tests (run by CTest through run-pytest.sh, label `python`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop  # noqa: E402

# A pytest run whose every test skipped exits with this code, which CTest reports as "Skipped"
# (SKIP_RETURN_CODE in CMakeLists.txt) instead of "Passed".
SKIPPED_EXIT_CODE = 77


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared beside the checkout ($QSHARD_SHARED_DIR); stories260k tests skip without it."""
    path = Path(os.environ.get("QSHARD_SHARED_DIR", interop.REPO.parent / "shared"))
    needed = [path / "models/stories260k/config.json",
              path / "data/stories260k/calib_128x256.i32",
              path / "data/stories260k/eval_256x256.i32"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.skip(f"shared data not found ({', '.join(missing)}): the stories260k interop "
                    f"tests need ../shared beside the checkout or QSHARD_SHARED_DIR")
    return path.resolve()


@pytest.fixture(scope="session")
def smollm2() -> tuple[Path, Path]:
    """models/SmolLM2-135M-Instruct and data/smollm2-pydocs (bash scripts/get-models.sh)."""
    model, data = interop.REPO / "models/SmolLM2-135M-Instruct", interop.REPO / "data/smollm2-pydocs"
    needed = [model / "model.safetensors", data / "calib_128x512.i32", data / "eval_64x512.i32"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.skip(f"SmolLM2 not found ({', '.join(missing)}): run bash scripts/get-models.sh")
    return model, data


@pytest.fixture(scope="session")
def apps() -> None:
    """qshard-quantize, qshard-export and qshard-eval of the build ($QSHARD_* from CTest)."""
    missing = [name for name in ("qshard-quantize", "qshard-export", "qshard-eval")
               if interop.app(name) is None]
    if missing:
        pytest.skip(f"not built: {', '.join(missing)} (CTest passes QSHARD_QUANTIZE, "
                    f"QSHARD_EXPORT, QSHARD_EVAL; by hand: build/apps/)")


def pytest_report_header(config):
    return f"GPTQ client: {interop.client_versions()}"


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    ran = sum(len(reporter.stats.get(k, [])) for k in ("passed", "failed", "error"))
    if ran == 0 and reporter.stats.get("skipped"):
        session.exitstatus = SKIPPED_EXIT_CODE
