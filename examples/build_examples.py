"""Build the small example models in this folder with the real frameworks.

Run from anywhere: ``python examples/build_examples.py`` (needs torch, scikit-learn,
joblib, safetensors). The outputs are committed so that nobody needs those
frameworks to try mlgate.

- ``clean-sklearn/model.joblib``: a scikit-learn pipeline saved with joblib.
- ``clean-torch/pytorch_model.bin``: a torch state_dict (zip format).
- ``clean-safetensors/model.safetensors``: a tiny tensor file.
- ``evil-pickle/model.pkl``: a pickle whose payload, if it were ever loaded,
  would create ``/tmp/mlgate-canary/example-evil-pickle``. mlgate never loads it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _CanaryPayload:
    """Pickles to a call of os.system that would touch a canary file."""

    def __reduce__(self):
        return (os.system, ("mkdir -p /tmp/mlgate-canary && touch /tmp/mlgate-canary/example-evil-pickle",))


def main() -> None:
    import joblib
    import torch
    from safetensors.torch import save_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (HERE / "clean-sklearn").mkdir(exist_ok=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    pipe.fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.9]], [0, 1, 1, 0])
    joblib.dump(pipe, HERE / "clean-sklearn" / "model.joblib")

    (HERE / "clean-torch").mkdir(exist_ok=True)
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, 2).state_dict(), HERE / "clean-torch" / "pytorch_model.bin")

    (HERE / "clean-safetensors").mkdir(exist_ok=True)
    save_file({"weight": torch.zeros(2, 2)}, str(HERE / "clean-safetensors" / "model.safetensors"))

    (HERE / "evil-pickle").mkdir(exist_ok=True)
    payload = {"weights": [0.1, 0.2], "hook": _CanaryPayload()}
    (HERE / "evil-pickle" / "model.pkl").write_bytes(pickle.dumps(payload, protocol=4))


if __name__ == "__main__":
    main()
