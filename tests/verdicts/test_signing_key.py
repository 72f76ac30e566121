"""One verdict-key loader with one set of rules, used by the controller, the MLflow plugin,
``mlgate check`` and the admission server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlgate.controller.config.settings import ConfigError, ControllerConfig
from mlgate.controller.mlflow.server_plugin import _load_key
from mlgate.controller.verdicts.signing import MIN_KEY_BYTES, SigningKeyError, load_signing_key

GOOD = "k" * MIN_KEY_BYTES


def test_inline_key_wins_and_is_stripped(tmp_path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("f" * 40 + "\n")
    assert load_signing_key(f"  {GOOD}\n", str(key_file)) == GOOD.encode()
    assert load_signing_key("", str(key_file)) == b"f" * 40
    assert load_signing_key("", "") is None


@pytest.mark.parametrize("where", ["inline", "file"])
def test_a_short_key_is_refused_the_same_way_everywhere(tmp_path, where: str) -> None:
    short = "k" * (MIN_KEY_BYTES - 1)
    key_file = tmp_path / "key"
    key_file.write_text(short)
    inline, path = (short, "") if where == "inline" else ("", str(key_file))
    with pytest.raises(SigningKeyError, match="too short"):
        load_signing_key(inline, path)
    with pytest.raises(ConfigError, match="too short"):  # controller, mlgate check, admission server
        ControllerConfig(signing_key=inline, signing_key_file=path).key()
    env = {"MLGATE_SIGNING_KEY": inline} if inline else {"MLGATE_SIGNING_KEY_FILE": path}
    assert _load_key(env) is None  # the MLflow plugin refuses gated requests instead of trusting it
    assert _load_key({"MLGATE_SIGNING_KEY": GOOD}) == GOOD.encode()


def test_an_unreadable_key_file_is_one_line(tmp_path) -> None:
    with pytest.raises(SigningKeyError, match=r"cannot read signing key file .*missing"):
        load_signing_key("", str(tmp_path / "missing"))


def test_the_admission_verdict_lookup_does_not_load_the_s3_writer() -> None:
    code = (
        "import sys, mlgate.controller.admission.verdict_lookup; print('mlgate.controller.s3.actions' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
