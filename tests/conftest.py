import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_npu  # noqa: F401


def run_python(code: str, env: dict = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (for settings read once, and for crashes)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def _reset_npu_state():
    yield
    torch.npu.set_device(0)
    torch.npu.set_stream(torch.npu.default_stream(0))
