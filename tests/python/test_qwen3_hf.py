"""Qwen3 (issue 18, the dense family): a tiny random Qwen3ForCausalLM made by transformers itself
(per-head q/k RMSNorm, q_proj wider than the hidden size, tied head), saved as a Hugging Face
directory, and

- qshard's CPU forward (`qshard-eval --logits_out`) against transformers' forward on the same
  tokens: within 1e-4 of the largest logit;
- qshard-quantize (GPTQ, 4 bits, group 32) on calibration text the model generated itself, better
  than RTN in perplexity on other generated text; its qshard-export directory loads in
  transformers (optimum + GPTQModel's Torch kernel, every linear module packed) with the
  perplexity qshard-eval gives the checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import interop

SEQ = 64
VOCAB = 256


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    """The tiny model's directory and token files: 64 calibration and 16 evaluation rows."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    work = tmp_path_factory.mktemp("qwen3")
    torch.manual_seed(20261204)
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=160,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6,
                         rope_theta=10000.0, tie_word_embeddings=True, attention_bias=False,
                         use_sliding_window=False, dtype="float32")
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():  # weights large enough for a peaked next-token distribution
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)  # q_norm/k_norm too: not all ones, so they matter
            elif p.dim() == 2:
                p.normal_(0.0, 0.3 if "embed" in name else 0.15)
    model_dir = work / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["model_type"] == "qwen3" and saved["head_dim"] == 32
    calib, evaluation = interop.write_generated_text(model, work, seq_len=SEQ)
    return model, model_dir, calib, evaluation


def test_qshard_forward_matches_transformers(apps, qwen3, tmp_path):
    model, model_dir, _, evaluation = qwen3
    logits_file = tmp_path / "logits.f32"
    ours = interop.qshard_eval(model_dir, evaluation, logits_out=logits_file, seq_len=SEQ,
                               extra=("--backend", "cpu"))
    tokens = interop.read_tokens(evaluation, seq_len=SEQ)
    assert ours["logits_shape"] == [len(tokens) * SEQ, VOCAB]
    ours_logits = np.fromfile(logits_file, dtype="<f4").reshape(len(tokens), SEQ, VOCAB)
    theirs = interop.logits(model, tokens)
    scale = float(np.abs(theirs).max())
    max_diff = float(np.abs(ours_logits - theirs).max())
    theirs_ppl, predictions = interop.perplexity(model, tokens)
    interop.record("qwen3-tiny-forward", {"max_abs_logit": scale, "max_abs_logit_diff": max_diff,
                                          "qshard_perplexity": ours["perplexity"],
                                          "transformers_perplexity": theirs_ppl})
    assert predictions == ours["predictions"]
    assert max_diff / scale < 1e-4, (max_diff, scale)
    assert abs(theirs_ppl - ours["perplexity"]) / theirs_ppl < 1e-4


def test_gptq_export_of_qwen3_loads_in_transformers(apps, qwen3, tmp_path):
    _, model_dir, calib, evaluation = qwen3
    results = {}
    for method in ("rtn", "gptq"):
        checkpoint = tmp_path / f"{method}.h5"
        interop.run_app("qshard-quantize", "--model", model_dir, "--calib", calib, "--samples", 64,
                        "--seq_len", SEQ, "--bits", 4, "--group_size", 32, "--method", method,
                        "--backend", "cpu", "--out", checkpoint, "--quiet")
        results[method] = interop.qshard_eval(model_dir, evaluation, seq_len=SEQ,
                                              extra=("--checkpoint", checkpoint, "--backend", "cpu"))
    fp = interop.qshard_eval(model_dir, evaluation, seq_len=SEQ, extra=("--backend", "cpu"))
    gptq_dir = tmp_path / "gptq-export"
    interop.run_app("qshard-export", "--checkpoint", tmp_path / "gptq.h5", "--model", model_dir,
                    "--out", gptq_dir)
    client = interop.load_hf_gptq(gptq_dir)
    packed = interop.quantized_modules(client)
    assert len(packed) == 2 * 7, sorted(packed)  # every linear module of both layers
    client_ppl, _ = interop.perplexity(client, interop.read_tokens(evaluation, seq_len=SEQ))
    ours = results["gptq"]["perplexity"]
    interop.record("qwen3-tiny-w4g32", {"fp_perplexity": fp["perplexity"],
                                         "rtn_perplexity": results["rtn"]["perplexity"],
                                         "gptq_perplexity": ours, "client_perplexity": client_ppl})
    assert ours < results["rtn"]["perplexity"]
    assert results["gptq"]["kl"] < results["rtn"]["kl"]
    assert abs(client_ppl - ours) / ours < 5e-3, (client_ppl, ours)
