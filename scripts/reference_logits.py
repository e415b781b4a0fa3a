#!/usr/bin/env python3
"""Computes a model's reference logits with transformers (float32, CPU) and checks them.

    python scripts/reference_logits.py MODEL_DIR [--expect EXPECT_JSON]

Tokenizes a fixed English sentence with the model's tokenizer, runs the Hugging Face forward in
float32 and writes `reference_tokens.i32` (int32 ids) and `reference_logits.f32` ([tokens, vocab]
float32) into MODEL_DIR, as ../shared/models/stories260k holds them (the C++ forward test reads
them). Prints one JSON line: the token count, the perplexity of the sentence, and the first four
logits of the first and last positions. With --expect (that JSON, recorded once), exits 1 unless
the tokens are equal and every number agrees within 1e-3 (relative for the perplexity).
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

SENTENCE = ("The history of the city goes back more than two thousand years. It was founded as a "
            "small trading post on the banks of the river, and over the centuries it grew into one "
            "of the most important centres of commerce in the region.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--expect", help="the JSON line recorded once")
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    ids = tokenizer(SENTENCE, return_tensors="pt").input_ids
    if tokenizer.decode(ids[0]) != SENTENCE:
        sys.exit(f"reference_logits: {args.model}: the tokenizer does not round-trip the sentence")
    with torch.no_grad():
        output = model(ids, labels=ids)
    logits = output.logits[0].float().numpy()
    ids[0].numpy().astype("<i4").tofile(args.model / "reference_tokens.i32")
    logits.astype("<f4").tofile(args.model / "reference_logits.f32")
    result = {
        "tokens": ids[0].tolist(),
        "perplexity": round(float(torch.exp(output.loss)), 5),
        "first": [round(float(v), 5) for v in logits[0, :4]],
        "last": [round(float(v), 5) for v in logits[-1, :4]],
    }
    print(json.dumps(result))
    if args.expect:
        expect = json.loads(args.expect)
        problems = []
        if expect["tokens"] != result["tokens"]:
            problems.append("token ids differ")
        if abs(expect["perplexity"] - result["perplexity"]) > 1e-3 * expect["perplexity"]:
            problems.append(f"perplexity {result['perplexity']} != {expect['perplexity']}")
        for key in ("first", "last"):
            if not np.allclose(expect[key], result[key], atol=1e-3, rtol=0):
                problems.append(f"{key} logits {result[key]} != {expect[key]}")
        if problems:
            sys.exit(f"reference_logits: {args.model}: " + "; ".join(problems))


if __name__ == "__main__":
    main()
