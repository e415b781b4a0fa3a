#!/usr/bin/env python3
"""Rewrites a GPTQ checkpoint's zero points from the v1 layout to gptq_v2, repairing wrapped ones.

    python bench/gptq_zeros_v1_to_v2.py SOURCE_DIR DEST_DIR

The v1 layout (`checkpoint_format: gptq`, what GPTQModel saves unless told otherwise) stores
zero - 1 in each `qzeros` field. An asymmetric group whose zero point is 0 (a group almost all
positive: common at 2 bits) has no v1 encoding: -1 wraps to the field's largest value 2^bits - 1,
which every client reads back as 2^bits, shifting that group's whole grid (docs/FORMATS.md). A
real zero point never exceeds 2^bits - 1, so a v1 field of 2^bits - 1 can only be a wrapped 0:
this script maps each field f to (f + 1) mod 2^bits, exactly the zero points the quantizer chose,
and writes them as gptq_v2 (zeros as they are). Everything else is copied unchanged.

It lets a peer's v1 checkpoint be scored for its quantizer rather than for its file format
(docs/QUALITY.md, "Side by side with GPTQModel"). Prints each module with wrapped fields and the
total. Needs numpy, torch and safetensors (the interop venv).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def unpack_fields(words: np.ndarray, bits: int) -> np.ndarray:
    """int32 [rows, words] packed as one little-endian bit stream per row -> uint32 fields."""
    rows = np.ascontiguousarray(words, dtype="<i4")  # a transposed view too
    stream = np.unpackbits(rows.view(np.uint8), axis=1, bitorder="little")
    count = stream.shape[1] // bits
    fields = stream[:, : count * bits].reshape(words.shape[0], count, bits).astype(np.uint32)
    return (fields << np.arange(bits, dtype=np.uint32)).sum(axis=2, dtype=np.uint32)


def pack_fields(fields: np.ndarray, bits: int, word_count: int) -> np.ndarray:
    """The inverse of unpack_fields: fields [rows, n] into int32 [rows, word_count]."""
    stream = ((fields[:, :, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    stream = stream.reshape(fields.shape[0], -1)
    padded = np.zeros((fields.shape[0], word_count * 32), dtype=np.uint8)
    padded[:, : stream.shape[1]] = stream
    return np.packbits(padded, axis=1, bitorder="little").view("<i4")


def quantization_config(directory: Path) -> tuple[dict, list[Path]]:
    """The quantization settings and every file that records the checkpoint format."""
    files, config = [], None
    model_config = directory / "config.json"
    if model_config.exists() and "quantization_config" in json.loads(model_config.read_text()):
        files.append(model_config)
        config = json.loads(model_config.read_text())["quantization_config"]
    legacy = directory / "quantize_config.json"
    if legacy.exists():
        files.append(legacy)
        config = config or json.loads(legacy.read_text())
    if config is None:
        sys.exit(f"{directory}: no quantization_config in config.json and no quantize_config.json")
    return config, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()

    config, config_files = quantization_config(args.source)
    layout = config.get("checkpoint_format", config.get("format"))
    if layout != "gptq":
        sys.exit(f"{args.source}: checkpoint_format is {layout!r}, not the v1 'gptq'")
    if config.get("sym", True):
        sys.exit(f"{args.source}: symmetric zero points never wrap; nothing to repair")
    bits = int(config["bits"])
    if args.dest.exists():
        sys.exit(f"{args.dest}: exists (this script never overwrites)")

    shutil.copytree(args.source, args.dest)
    mask = np.uint32((1 << bits) - 1)
    total_wrapped = total_fields = 0
    for shard in sorted(args.dest.glob("*.safetensors")):
        tensors = load_file(shard)
        for name in sorted(n for n in tensors if n.endswith(".qzeros")):
            words = tensors[name].numpy()
            columns = tensors[name.removesuffix(".qzeros") + ".scales"].shape[1]
            stored = unpack_fields(words, bits)[:, :columns]  # the fields past out_features pad
            wrapped = int((stored == mask).sum())
            if wrapped:
                print(f"{name}: {wrapped} wrapped zero point(s) of {stored.size}")
            total_wrapped += wrapped
            total_fields += stored.size
            tensors[name] = torch.from_numpy(pack_fields((stored + 1) & mask, bits, words.shape[1]))
            if not np.array_equal(unpack_fields(tensors[name].numpy(), bits)[:, :columns], (stored + 1) & mask):
                sys.exit(f"{shard}: {name}: the repacked zero points do not read back")
        save_file(tensors, shard, metadata={"format": "pt"})
    for path in config_files:
        relative = path.relative_to(args.source)
        document = json.loads((args.dest / relative).read_text())
        target = document["quantization_config"] if relative.name == "config.json" else document
        target["checkpoint_format"] = "gptq_v2"
        if "format" in target:
            target["format"] = "gptq_v2"
        (args.dest / relative).write_text(json.dumps(document, indent=2) + "\n")
    print(f"{args.dest}: {total_wrapped} of {total_fields} zero points were wrapped (0 stored as "
          f"{int(mask)}); all rewritten as gptq_v2")


if __name__ == "__main__":
    main()
