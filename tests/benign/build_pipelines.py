"""Build the sentence-transformers and diffusers folders of the benign suite.

Needs torch, transformers 4.x, sentence-transformers, diffusers::

    python tests/benign/build_pipelines.py

sentence-transformers: a full model directory as ``SentenceTransformer.save`` writes it (``modules.json``,
``config_sentence_transformers.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json``, the
transformer's files and tokenizer, the generated model card), once as safetensors with a ``Normalize``
module and once as ``pytorch_model.bin`` with a ``Dense`` module. diffusers: a tiny Stable Diffusion
pipeline (``model_index.json``, ``scheduler/``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``)
saved by ``save_pretrained``, as safetensors and as ``.bin``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_transformers import TINY, bert_tokenizer, clip_tokenizer
from common import fresh, scratch, seed_everything


def build_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    base = scratch("st-base")
    tok = bert_tokenizer()
    BertModel(BertConfig(vocab_size=len(tok), max_position_embeddings=64, **TINY)).save_pretrained(base)
    tok.save_pretrained(base)

    transformer = models.Transformer(str(base), max_seq_length=32)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    st.save(str(fresh("sentence-transformers")), safe_serialization=True)

    seed_everything(1)
    transformer = models.Transformer(str(base), max_seq_length=32)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="cls")
    dense = models.Dense(in_features=16, out_features=8)
    st = SentenceTransformer(modules=[transformer, pooling, dense], device="cpu")
    st.save(str(fresh("sentence-transformers-bin")), safe_serialization=False)


def build_diffusers() -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=16,
    )
    tok = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            max_position_embeddings=16,
            bos_token_id=len(tok) - 2,
            eos_token_id=len(tok) - 1,
            **TINY,
        )
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(fresh("diffusers-sd-pipeline"), safe_serialization=True)
    pipe.save_pretrained(fresh("diffusers-sd-pipeline-bin"), safe_serialization=False)


BUILDERS = [build_sentence_transformers, build_diffusers]


def main(only: list[str]) -> None:
    for build in BUILDERS:
        if only and build.__name__[len("build_") :] not in only:
            continue
        seed_everything(0)
        build()
        print(f"built {build.__name__[len('build_') :]}")


if __name__ == "__main__":
    main(sys.argv[1:])
