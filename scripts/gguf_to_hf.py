#!/usr/bin/env python3
"""Converts a llama.cpp GGUF file of a Llama-architecture model into a Hugging Face directory.

    python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR

Writes `config.json` (model_type llama), `model.safetensors` (every tensor dequantized with the
`gguf` package and stored as fp16; norms as fp16 too), `tokenizer.json` and
`tokenizer_config.json` (the byte-level BPE rebuilt from the GGUF metadata) and
`generation_config.json`. Used by scripts/get-models.sh; never by the main job.

llama.cpp stores the q_proj/k_proj rows permuted for its interleaved rotary layout; the Hugging
Face row order (rotate-half) is restored here.
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

# GGUF tensor names (per block) and their Hugging Face names.
BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# The GPT-2 split that llama.cpp's 'smollm' pre-tokenizer uses after splitting every digit.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
TOKEN_TYPE_CONTROL = 3


def field(reader, key, default=None):
    entry = reader.fields.get(key)
    if entry is None:
        if default is None:
            raise SystemExit(f"gguf_to_hf: {key} missing from the GGUF metadata")
        return default
    return entry.contents()


def undo_rotary_permutation(weight, heads):
    """Inverse of llama.cpp's convert permute(): rows (head, pair, 2) -> (head, 2, pair)."""
    rows = weight.shape[0]
    return (weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def convert_tensors(reader, heads, kv_heads):
    tensors = {}
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        values = np.asarray(values, dtype=np.float32).reshape(
            [int(d) for d in reversed(tensor.shape)])
        name = tensor.name
        if name == "token_embd.weight":
            hf_name = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf_name = "model.norm.weight"
        elif name == "output.weight":
            hf_name = "lm_head.weight"
        elif name.startswith("blk."):
            _, layer, kind, _ = name.split(".")
            if kind not in BLOCK_NAMES:
                raise SystemExit(f"gguf_to_hf: unexpected tensor {name}")
            hf_name = f"model.layers.{layer}.{BLOCK_NAMES[kind]}.weight"
            if kind == "attn_q":
                values = undo_rotary_permutation(values, heads)
            elif kind == "attn_k":
                values = undo_rotary_permutation(values, kv_heads)
        else:
            raise SystemExit(f"gguf_to_hf: unexpected tensor {name}")
        if not np.isfinite(values).all():
            raise SystemExit(f"gguf_to_hf: {name} holds NaN or Inf")
        tensors[hf_name] = np.ascontiguousarray(values.astype(np.float16))
    return tensors


def make_config(reader, tied):
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"gguf_to_hf: architecture '{arch}' is not llama")
    hidden = int(field(reader, "llama.embedding_length"))
    heads = int(field(reader, "llama.attention.head_count"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(reader, "llama.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(field(reader, "llama.attention.head_count_kv")),
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "max_position_embeddings": int(field(reader, "llama.context_length")),
        "rms_norm_eps": float(str(np.float32(field(reader, "llama.attention.layer_norm_rms_epsilon")))),
        "rope_theta": float(field(reader, "llama.rope.freq_base")),
        "vocab_size": int(field(reader, "llama.vocab_size")),
        "tie_word_embeddings": tied,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": int(field(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field(reader, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(field(reader, "tokenizer.ggml.padding_token_id")),
        "torch_dtype": "float16",
    }


def make_tokenizer(reader):
    if field(reader, "tokenizer.ggml.model") != "gpt2":
        raise SystemExit("gguf_to_hf: only byte-level BPE ('gpt2') tokenizers are converted")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False,
                                     byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    special = [token for token, kind in zip(tokens, types) if kind == TOKEN_TYPE_CONTROL]
    tokenizer.add_special_tokens(special)
    return tokenizer, tokens


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    reader = gguf.GGUFReader(str(source))
    names = {t.name for t in reader.tensors}
    config = make_config(reader, tied="output.weight" not in names)
    tensors = convert_tensors(reader, config["num_attention_heads"],
                              config["num_key_value_heads"])
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer, tokens = make_tokenizer(reader)
    tokenizer.save(str(out / "tokenizer.json"))
    bos, eos = config["bos_token_id"], config["eos_token_id"]
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "pad_token": tokens[config["pad_token_id"]],
        "unk_token": tokens[int(field(reader, "tokenizer.ggml.unknown_token_id"))],
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "model_max_length": config["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": field(reader, "tokenizer.chat_template"),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": bos, "eos_token_id": eos}, indent=2) + "\n")
    print(f"gguf_to_hf: {len(tensors)} tensors, {len(tokens)} tokens -> {out}")


if __name__ == "__main__":
    main()
