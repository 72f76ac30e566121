"""Rebuild the whole benign suite (``tests/fixtures/benign/``) with the real libraries.

One entry point for every builder in this folder::

    python tests/benign/build_all.py              # everything (a few minutes on 2 cores)
    python tests/benign/build_all.py onnx gguf    # only the named builders

Run it with an interpreter that has the builders' libraries (never mlgate's own venv): torch==2.13.0,
transformers 4.57, tokenizers, sentencepiece, sentence-transformers, diffusers, peft, accelerate,
safetensors, onnx, onnxscript, onnxruntime, scikit-learn, xgboost, lightgbm, pandas, pytz, joblib, lz4,
skops, mlflow(-skinny), lightning, gguf, numpy, plus the five packages ``build_bundled.py`` copies from.
Each builder runs in its own process with fixed seeds; nothing is downloaded. The Keras/TensorFlow
models under ``tests/fixtures/benign/keras_tf/`` have their own builders there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import WORK  # noqa: E402

BUILDERS = {
    "transformers": "build_transformers.py",
    "pipelines": "build_pipelines.py",
    "onnx": "build_onnx.py",
    "classic_ml": "build_classic_ml.py",
    "data": "build_data.py",
    "gguf": "build_gguf.py",
    "bundled": "build_bundled.py",
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in BUILDERS]
    if unknown:
        print(f"unknown builder(s) {unknown}; choose from {sorted(BUILDERS)}", file=sys.stderr)
        return 2
    for name, script in BUILDERS.items():
        if argv and name not in argv:
            continue
        start = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / script)], check=False)
        if done.returncode:
            print(f"{script} failed with exit status {done.returncode}", file=sys.stderr)
            return done.returncode
        print(f"== {name}: {time.monotonic() - start:.0f} s")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
