"""A small causal LM and a character tokenizer, built locally (nothing downloaded).

Saved as an ordinary Hugging Face folder: `AutoModelForCausalLM.from_pretrained(folder)`
and `AutoTokenizer.from_pretrained(folder)` load it back, and so does everything else
that takes a model folder (the samplers, the trainers, vLLM).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from selftrain.config import TinyModelConfig

SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
# Printable ASCII (digits, letters, punctuation, space) plus newline and tab: enough for
# the embedded task and for small experiments on a user's own text.
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n\t"


def build_char_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character; every encoding starts with <bos>; decoding joins characters.

    >>> tok = build_char_tokenizer()
    >>> ids = tok("12+3=")["input_ids"]
    >>> len(ids), ids[0] == tok.bos_token_id
    (6, True)
    >>> tok.decode(ids, skip_special_tokens=True)
    '12+3='
    """
    chars = list(dict.fromkeys(alphabet))
    vocab = {t: i for i, t in enumerate(SPECIAL + chars)}
    # BPE with no merges splits text into single characters and maps anything else to <unk>.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    # TRL's SFTTrainer expects the tokenizer to add BOS itself, as real tokenizers do.
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=4096,
    )


def build_tiny_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> PreTrainedModel:
    """A randomly initialised model sized by `cfg`; the same seed gives the same weights."""
    torch.manual_seed(seed)
    if cfg.arch == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tokenizer),
                n_positions=cfg.max_length,
                n_embd=cfg.hidden_size,
                n_layer=cfg.num_layers,
                n_head=cfg.num_heads,
                n_inner=cfg.intermediate_size,
                resid_pdrop=cfg.dropout,
                embd_pdrop=cfg.dropout,
                attn_pdrop=cfg.dropout,
                activation_function=cfg.activation or "gelu",
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                tie_word_embeddings=True,
            )
        )
    if cfg.arch == "nope":
        from transformers import SmolLM3Config, SmolLM3ForCausalLM

        return SmolLM3ForCausalLM(SmolLM3Config(**_decoder_settings(cfg, tokenizer), no_rope_layers=[0] * cfg.num_layers,
                                                use_sliding_window=False))
    return LlamaForCausalLM(LlamaConfig(**_decoder_settings(cfg, tokenizer)))


def _decoder_settings(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> dict:
    """The Llama-style decoder's sizes, shared by `llama` and `nope`."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_length,
        attention_dropout=cfg.dropout,
        hidden_act=cfg.activation or "silu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A small chat template in plain characters (the character tokenizer spells it out), so a
tiny model exercises every chat-template code path that a real instruct model does."""


def save_tiny(folder: Path, cfg: TinyModelConfig, seed: int, chat: bool = False) -> int:
    """Build and save the tiny model and its tokenizer (with `CHAT_TEMPLATE` if `chat`);
    returns the parameter count."""
    tokenizer = build_char_tokenizer()
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    model = build_tiny_model(cfg, tokenizer, seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())
