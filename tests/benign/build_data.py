"""Build the pickle/array/checkpoint folders of the benign suite with the real libraries.

Needs torch, lightning, transformers 4.x + accelerate, scikit-learn, joblib, lz4, pandas, numpy::

    python tests/benign/build_data.py

- pandas DataFrames with categorical, datetime, tz-aware datetime (UTC, zoneinfo and pytz), timedelta,
  string and nullable integer columns, pickled by ``DataFrame.to_pickle`` (protocol 5, protocol 4,
  gzip-compressed ``.pkl.gz``);
- a scikit-learn pipeline dumped by joblib once per compressor (none, zlib, gzip, bz2, lzma, xz, lz4);
- numpy ``.npz`` (plain and compressed) and ``.npy`` float arrays;
- torch: a ``state_dict`` file, optimizer and scheduler state dicts, a TorchScript module, the checkpoint
  folder a transformers ``Trainer`` writes (``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``,
  ``training_args.bin``, ``trainer_state.json``), and a PyTorch Lightning ``.ckpt``;
- a SageMaker model artifact: ``model.tar.gz`` with a saved transformers model and ``code/inference.py``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_transformers import TINY, bert_tokenizer
from common import fresh, inside, scratch, seed_everything


# --- pandas ---------------------------------------------------------------------------------------
def feature_frame():
    import zoneinfo

    import numpy as np
    import pandas as pd
    import pytz

    n = 12
    start = datetime.datetime(2024, 3, 30, 22, 0)
    return pd.DataFrame(
        {
            "customer_id": pd.array(range(1000, 1000 + n), dtype="Int64"),
            "score": np.linspace(0.0, 1.0, n),
            "segment": pd.Categorical(["a", "b", "c"] * (n // 3), categories=["a", "b", "c", "d"], ordered=True),
            "channel": pd.Series(["web", "store", "app"] * (n // 3), dtype="category"),
            "signup": pd.date_range(start, periods=n, freq="h"),
            "last_seen_utc": pd.date_range(start, periods=n, freq="h", tz="UTC"),
            "last_seen_paris": pd.date_range(start, periods=n, freq="h", tz=zoneinfo.ZoneInfo("Europe/Paris")),
            "billing_ny": pd.date_range(start, periods=n, freq="D", tz=pytz.timezone("America/New_York")),
            "session": pd.to_timedelta(np.arange(n), unit="min"),
            "note": pd.array([f"note {i}" for i in range(n)], dtype="string"),
        }
    ).set_index(pd.period_range("2024-01", periods=n, freq="M"))


def build_pandas() -> None:
    import pickle

    frame = feature_frame()
    frame.to_pickle(fresh("pandas-dataframe-pickle") / "features.pkl")
    frame.to_pickle(fresh("pandas-dataframe-pickle-protocol4") / "features.pkl", protocol=4)
    frame.to_pickle(fresh("pandas-dataframe-pickle-gzip") / "features.pkl.gz")
    out = fresh("pandas-series-and-frames")
    with open(out / "datasets.pickle", "wb") as fh:
        pickle.dump(
            {"train": frame.iloc[:8], "test": frame.iloc[8:], "label": frame["score"] > 0.5, "columns": list(frame)},
            fh,
            protocol=pickle.HIGHEST_PROTOCOL,
        )


# --- joblib ---------------------------------------------------------------------------------------
def small_sklearn_model():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def build_joblib() -> None:
    import joblib

    model = small_sklearn_model()
    joblib.dump(model, fresh("joblib-uncompressed") / "model.joblib")
    for method in ("zlib", "gzip", "bz2", "lzma", "xz", "lz4"):
        joblib.dump(model, fresh(f"joblib-{method}") / f"model.joblib.{method}", compress=(method, 3))


# --- numpy ----------------------------------------------------------------------------------------
def build_numpy() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {
        "dense_1/kernel": rng.normal(size=(8, 16)).astype(np.float32),
        "dense_1/bias": np.zeros(16, dtype=np.float32),
        "dense_2/kernel": rng.normal(size=(16, 2)).astype(np.float64),
        "embedding": rng.normal(size=(32, 4)).astype(np.float16),
    }
    np.savez(fresh("numpy-npz") / "weights.npz", **arrays)
    np.savez_compressed(fresh("numpy-npz-compressed") / "weights.npz", **arrays)
    out = fresh("numpy-npy")
    np.save(out / "embeddings.npy", arrays["embedding"])
    np.save(out / "mean.npy", np.float64(0.5) * np.ones(4))


# --- torch ----------------------------------------------------------------------------------------
def small_net():
    import torch
    from torch import nn

    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 2)), torch


def build_torch() -> None:
    net, torch = small_net()
    torch.save(net.state_dict(), fresh("torch-state-dict") / "model.pt")

    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=2)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[2])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    for _ in range(3):
        loss = net(torch.randn(4, 8)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        plateau.step(loss.item())
    out = fresh("torch-optimizer-scheduler")
    torch.save(optimizer.state_dict(), out / "optimizer.pt")
    torch.save(scheduler.state_dict(), out / "scheduler.pt")
    torch.save(plateau.state_dict(), out / "plateau_scheduler.pt")
    torch.save(
        {
            "epoch": 3,
            "model_state_dict": net.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "loss": loss.item(),
        },
        out / "checkpoint.tar",
    )

    scripted = torch.jit.script(net.eval())
    torch.jit.save(scripted, fresh("torchscript-module") / "model.pt")


def build_hf_trainer() -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    tok = bert_tokenizer()
    model = BertForSequenceClassification(
        BertConfig(vocab_size=len(tok), max_position_embeddings=64, num_labels=2, **TINY)
    )
    texts = ["the quick brown fox", "a tiny corpus", "models are saved", "hello world"] * 2
    enc = tok(texts, padding="max_length", max_length=8, truncation=True)
    data = [
        {
            "input_ids": torch.tensor(enc["input_ids"][i]),
            "attention_mask": torch.tensor(enc["attention_mask"][i]),
            "labels": torch.tensor(i % 2),
        }
        for i in range(len(texts))
    ]
    work = scratch("hf-trainer")
    args = TrainingArguments(
        output_dir="hf-trainer",  # relative: training_args.bin records it
        per_device_train_batch_size=4,
        max_steps=2,
        save_steps=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_steps=1,
    )
    with inside(work.parent):
        Trainer(model=model, args=args, train_dataset=data, processing_class=tok).train()
    out = fresh("hf-trainer-checkpoint")
    shutil.rmtree(out)
    shutil.copytree(work / "checkpoint-2", out)


def build_lightning() -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch import nn

    class TinyRegressor(L.LightningModule):
        def __init__(self, hidden: int = 8, lr: float = 1e-2, activation: str = "relu") -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1)}

    x = torch.randn(16, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    work = scratch("lightning")
    with inside(work):  # relative paths: the checkpoint records the callback's folder
        trainer = L.Trainer(
            max_epochs=2,
            default_root_dir=".",
            callbacks=[
                ModelCheckpoint(dirpath="ckpt", monitor="train_loss"),
                EarlyStopping("train_loss", patience=3),
            ],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            deterministic=True,
        )
        trainer.fit(TinyRegressor(), loader)
    out = fresh("lightning-checkpoint")
    checkpoints = sorted((work / "ckpt").glob("*.ckpt"))
    assert checkpoints, "Lightning wrote no checkpoint"
    for ckpt in checkpoints:
        shutil.copyfile(ckpt, out / ckpt.name)


INFERENCE_PY = '''"""SageMaker Hugging Face inference handlers (model_fn / predict_fn), as in AWS's examples."""

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def model_fn(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    return model, tokenizer


def predict_fn(data, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    inputs = tokenizer(data["inputs"], return_tensors="pt", truncation=True)
    with torch.no_grad():
        logits = model(**inputs).logits
    return {"top_token_ids": logits.argmax(-1).tolist()}
'''


def build_sagemaker() -> None:
    """A SageMaker model artifact: model.tar.gz holding a saved model plus code/inference.py."""
    import io
    import tarfile

    from transformers import BertConfig, BertForMaskedLM

    tok = bert_tokenizer()
    model_dir = scratch("sagemaker")
    BertForMaskedLM(BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TINY)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    code = {"code/inference.py": INFERENCE_PY, "code/requirements.txt": "transformers==4.57.6\n"}
    out = fresh("sagemaker-model-tar-gz")
    with tarfile.open(out / "model.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(model_dir.iterdir()):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 1_700_000_000
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
        for name, text in code.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))


BUILDERS = [build_pandas, build_joblib, build_numpy, build_torch, build_hf_trainer, build_lightning, build_sagemaker]


def main(only: list[str]) -> None:
    os.environ.setdefault("TZ", "UTC")
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
