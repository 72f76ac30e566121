"""A state directory the controller cannot write (read-only root filesystem, a file in the way) is one error
line naming the directory and the setting that moves it, not a traceback or an "internal error"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate.controller.config.settings import ConfigError, ControllerConfig, ensure_state_dir


def _controller(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    env.update({"MLGATE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"})
    return subprocess.run(
        [sys.executable, "-m", "mlgate.controller", "controller", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_names_dir_and_setting(message: str, home: Path) -> None:
    assert str(home) in message, message
    assert "MLGATE_HOME" in message and "state_dir" in message, message
    assert "not writable" in message, message


def test_controller_reports_an_unusable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory's parent should be\n")
    home = blocker / "state"
    result = _controller(home, tmp_path, "--once")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlgate: error: "), result.stderr
    _assert_names_dir_and_setting(lines[0], home)
    assert not list(tmp_path.glob("**/mlflow.db"))


def test_embedded_signing_key_in_an_unusable_state_dir(tmp_path: Path) -> None:
    """The key is generated into the state dir by every command that loads it (check, admission, plugin)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x\n")
    home = blocker / "state"
    with pytest.raises(ConfigError) as caught:
        ControllerConfig(state_dir=str(home)).key()
    _assert_names_dir_and_setting(str(caught.value), home)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only modes")
def test_read_only_state_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    try:
        with pytest.raises(ConfigError) as caught:
            ensure_state_dir(home)
        _assert_names_dir_and_setting(str(caught.value), home)
        result = _controller(home, tmp_path, "--once")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        _assert_names_dir_and_setting(result.stderr, home)
    finally:
        home.chmod(0o755)


def test_writable_state_dir_is_created_and_left_clean(tmp_path: Path) -> None:
    home = tmp_path / "a" / "b"
    ensure_state_dir(home)
    assert home.is_dir() and list(home.iterdir()) == []
