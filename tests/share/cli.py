"""Running ``iotscope`` as a real subprocess, for the share tests."""

from __future__ import annotations

import subprocess
import sys


def iotscope(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iotscope", *map(str, args)], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a refused command: exit 2, one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr
