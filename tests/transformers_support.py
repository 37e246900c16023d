"""A tiny causal LM built from a config (random weights) and a word-level tokenizer, saved
with save_pretrained so tests load it through the transformers binding's real path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

needs_transformers = [
    pytest.mark.transformers,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None
        or importlib.util.find_spec("transformers") is None,
        reason="needs torch and transformers (make install-dev installs both)",
    ),
]

CORPUS = """Hello world, how are you? The capital of France is Paris. List the numbers
from one to thirty: one two three four five six seven eight nine ten eleven twelve. Write a
story about the sea, a lighthouse and the people who keep it. What is the weather today?"""
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tiny_model(folder: Path, hidden_size: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    # Byte-level BPE: any text round-trips exactly, as with real models' tokenizers.
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        [CORPUS],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=core.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    # No end-of-sequence token: the random model always produces max_tokens tokens; and only
    # tokens that decode to whole characters, so that every token is one streamed piece.
    model.generation_config.eos_token_id = None
    model.generation_config.suppress_tokens = [
        i for i in range(core.get_vocab_size()) if "\ufffd" in core.decode([i]) or i < len(specials)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_encoder(folder: Path) -> Path:
    """A tiny BERT encoder with a WordPiece tokenizer, for the embeddings binding."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.train_from_iterator(
        [CORPUS], trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    torch.manual_seed(0)
    model = BertModel(
        BertConfig(
            vocab_size=core.get_vocab_size(),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_whisper(folder: Path) -> Path:
    """A tiny English-only Whisper (random weights) with its processor, for the asr
    binding: it transcribes nonsense, but through the real loading and decoding path."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|transcribe|>",
        "<|translate|>",
        "<|notimestamps|>",
        "<|startofprev|>",
        "<|nocaptions|>",
    ]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        [CORPUS],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    vocab = core.get_vocab()
    end = vocab["<|endoftext|>"]
    tokenizer = WhisperTokenizerFast(
        tokenizer_object=core,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(
        WhisperConfig(
            vocab_size=core.get_vocab_size(),
            num_mel_bins=80,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            d_model=16,
            encoder_ffn_dim=16,
            decoder_ffn_dim=16,
            max_source_positions=1500,
            max_target_positions=64,
            pad_token_id=end,
            bos_token_id=end,
            eos_token_id=end,
            decoder_start_token_id=vocab["<|startoftranscript|>"],
            suppress_tokens=[],
            begin_suppress_tokens=[],
        )
    )
    model.generation_config.no_timestamps_token_id = vocab["<|notimestamps|>"]
    model.generation_config.is_multilingual = False
    model.generation_config.max_length = 64
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(folder)
    return folder
