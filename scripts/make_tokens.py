#!/usr/bin/env python3
"""Turns plain text into a token file for qshard (calibration or evaluation).

    python scripts/make_tokens.py --tokenizer MODEL_DIR --rows 128 --seq-len 512 --seed 0 \
        --out calib_128x512.i32 TEXT_FILE_OR_DIR...

Reads every file given (folders: every regular file below them, in sorted order), tokenizes each
document with the model's `tokenizer.json` (the `tokenizers` package), joins the documents with
the end-of-text token between them, cuts the stream into non-overlapping windows of `--seq-len`
tokens and keeps `--rows` of them drawn with `--seed` (in stream order). Writes the ids as raw
little-endian int32, rows after rows (the `ROWSxCOLS.i32` layout that qshard-quantize `--calib`
and qshard-eval `--tokens` read), and `OUT.json` beside it: the provenance (files with their
sha256, the tokenizer's sha256, seed, windows drawn, `--source` as given).
Runs with any Python that has numpy and tokenizers (e.g. the interop venv).
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text_files(inputs):
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise SystemExit(f"make_tokens: {item}: no such file or folder")
    if not files:
        raise SystemExit("make_tokens: no input files")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, type=Path,
                        help="model folder holding tokenizer.json and config.json")
    parser.add_argument("--rows", required=True, type=int)
    parser.add_argument("--seq-len", required=True, type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--source", default="", help="where the text came from (provenance)")
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    if args.rows <= 0 or args.seq_len <= 1:
        raise SystemExit("make_tokens: --rows must be > 0 and --seq-len > 1")

    tokenizer_file = args.tokenizer / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    config = json.loads((args.tokenizer / "config.json").read_text())
    separator = int(config["eos_token_id"])
    files = text_files(args.inputs)
    stream = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise SystemExit(f"make_tokens: {path} is not UTF-8 text ({error})") from error
        stream += tokenizer.encode(text, add_special_tokens=False).ids
        stream.append(separator)
    windows = len(stream) // args.seq_len
    if windows < args.rows:
        raise SystemExit(f"make_tokens: the text gives {windows} windows of {args.seq_len} tokens "
                         f"({len(stream)} tokens), fewer than --rows {args.rows}")
    chosen = np.sort(np.random.default_rng(args.seed).choice(windows, args.rows, replace=False))
    ids = np.asarray(stream[: windows * args.seq_len], dtype="<i4").reshape(windows, args.seq_len)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".tmp")
    ids[chosen].tofile(partial)
    provenance = {
        "rows": args.rows, "seq_len": args.seq_len, "seed": args.seed,
        "source": args.source, "tokenizer": str(tokenizer_file), "tokenizer_sha256": sha256(tokenizer_file),
        "separator_token": separator, "stream_tokens": len(stream), "windows": windows,
        "windows_drawn": chosen.tolist(), "sha256": sha256(partial),
        "files": [{"path": str(p), "sha256": sha256(p)} for p in files],
    }
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(provenance, indent=1) + "\n")
    partial.replace(args.out)
    print(f"make_tokens: {args.out}: {args.rows} x {args.seq_len} tokens from {len(files)} files "
          f"({len(stream)} tokens, {windows} windows)", file=sys.stderr)


if __name__ == "__main__":
    main()
