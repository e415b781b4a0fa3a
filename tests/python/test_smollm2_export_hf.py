"""Issue 15: transformers loads qshard's GPTQ export of the real SmolLM2-135M (optimum +
GPTQModel's Torch kernel on the CPU), and its perplexity and logits match qshard-eval's.

qshard-quantize quantizes SmolLM2 at 4 bits, group 64 (every in_features, 576 and 1536, is a
multiple of 64, so all 210 linear modules are packed) on 8 calibration rows of the Python
documentation; qshard-export writes the GPTQ directory; the client scores the first rows of the
evaluation text. As in test_gptq_export_hf.py, the client with its scales cast to fp32 (exact
dequantization, as qshard's) reproduces qshard's logits up to summation order, and its perplexity
with its own fp16 dequantization is within 0.5 %.
"""

from __future__ import annotations

import numpy as np

import interop

SEQ_LEN = 512
ROWS = 8


def test_transformers_matches_qshard_on_smollm2(apps, smollm2, tmp_path):
    model_dir, data = smollm2
    checkpoint, gptq_dir = tmp_path / "w4g64.h5", tmp_path / "w4g64-gptq"
    interop.run_app("qshard-quantize", "--model", model_dir, "--calib", data / "calib_128x512.i32",
                    "--samples", ROWS, "--seq_len", SEQ_LEN, "--bits", 4, "--group_size", 64,
                    "--threads", 2, "--out", checkpoint, "--quiet", timeout=900)
    interop.run_app("qshard-export", "--checkpoint", checkpoint, "--model", model_dir,
                    "--out", gptq_dir)
    tokens = data / "eval_64x512.i32"
    logits_file = tmp_path / "logits.f32"
    ours = interop.qshard_eval(model_dir, tokens, max_rows=ROWS, logits_out=logits_file,
                               extra=("--checkpoint", checkpoint), seq_len=SEQ_LEN)
    ours_dir = interop.qshard_eval(gptq_dir, tokens, max_rows=ROWS, seq_len=SEQ_LEN)
    assert ours_dir["perplexity"] == ours["perplexity"], (ours_dir, ours)
    vocab = 49152
    ours_logits = np.fromfile(logits_file, dtype="<f4").reshape(ROWS, SEQ_LEN, vocab)

    client = interop.load_hf_gptq(gptq_dir)
    packed = interop.quantized_modules(client)
    assert len(packed) == 210 and set(packed) == interop.packed_in_directory(gptq_dir)
    rows = interop.read_tokens(tokens, ROWS, seq_len=SEQ_LEN)
    client_ppl, predictions = interop.perplexity(client, rows, batch=2)
    assert predictions == ours["predictions"] == ROWS * (SEQ_LEN - 1)
    interop.use_fp32_scales(client)
    exact_logits = interop.logits(client, rows, batch=2)

    scale = float(np.abs(ours_logits).max())
    exact_diff = float(np.abs(exact_logits - ours_logits).max())
    ppl_rel = abs(client_ppl - ours["perplexity"]) / ours["perplexity"]
    interop.record("hf-load-smollm2-w4g64", {
        "rows": ROWS, "seq_len": SEQ_LEN, "max_abs_logit": scale,
        "max_abs_logit_diff_client_fp32_scales_vs_qshard": exact_diff,
        "qshard_perplexity": ours["perplexity"], "client_perplexity": client_ppl,
        "perplexity_rel_diff": ppl_rel})
    assert exact_diff / scale < 1e-3  # 30 layers of float32 in two summation orders
    assert ppl_rel < 5e-3
