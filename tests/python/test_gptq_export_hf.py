"""Issue 7, test 1: transformers loads qshard's exported stories260k GPTQ directory (optimum +
GPTQModel's Torch kernel on the CPU); its logits and perplexity match qshard's own evaluation of
the same HDF5 checkpoint.

qshard-quantize quantizes stories260k (calibration: calib_128x256.i32), qshard-export writes the
GPTQ directory (where stories260k's 172-wide MLP modules cannot be packed for GPTQ clients, at 4
bits group 32, they are written dequantized in fp32 and excluded in the config; at 8 bits per row
every module is packed), and:

- logits: `qshard-eval --checkpoint CKPT --logits-out` on the first rows of eval_256x256.i32
  against the client's float32 logits of the same rows. Their difference has two sources, both
  reported: the forward implementations (transformers on qshard's dense float export against
  qshard, same fp32 weights) and the client's fp16 dequantization (TorchLinear rounds
  scale * (q - zero) to fp16, qshard keeps it exact in fp32): the dense model with those weights
  rounded to fp16 reproduces the client's logits, and the client with its scales cast to fp32
  (exact products) reproduces qshard's;
- perplexity: all 256 rows (65,280 predictions), the client's against qshard-eval's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interop

LOGIT_ROWS = 8
# (bits, group size, act_order): rows of docs/QUALITY.md's stories260k table. At 4 bits only the
# attention modules are packed; at 8 bits per row all 35 are, the 172-wide MLP included.
SETTINGS = [(4, 32, False), (4, 32, True), (8, -1, False)]
PACKED = {4: 20, 8: 35}


def _name(bits, group_size, act_order):
    return f"w{bits}g{group_size if group_size > 0 else 'row'}{'-actorder' if act_order else ''}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("stories")


@pytest.mark.parametrize("bits,group_size,act_order", SETTINGS,
                         ids=[_name(*s) for s in SETTINGS])
def test_transformers_matches_qshard_on_stories260k(apps, shared, workdir, bits, group_size,
                                                     act_order):
    name = _name(bits, group_size, act_order)
    model_dir = shared / "models/stories260k"
    calib = shared / "data/stories260k/calib_128x256.i32"
    tokens = shared / "data/stories260k/eval_256x256.i32"
    checkpoint = workdir / f"{name}.h5"
    interop.run_app("qshard-quantize", "--model", model_dir, "--calib", calib, "--samples", 128,
                    "--seq_len", 256, "--bits", bits, "--group_size", group_size,
                    "--act_order", int(act_order), "--out", checkpoint, "--quiet")
    gptq_dir, float_dir = workdir / f"{name}-gptq", workdir / f"{name}-float"
    interop.run_app("qshard-export", "--checkpoint", checkpoint, "--model", model_dir,
                    "--out", gptq_dir)
    interop.run_app("qshard-export", "--checkpoint", checkpoint, "--model", model_dir,
                    "--out", float_dir, "--format", "float")

    # qshard's own evaluation of the checkpoint, and of the exported directory
    logits_file = workdir / f"{name}-logits.f32"
    ours_rows = interop.qshard_eval(model_dir, tokens, max_rows=LOGIT_ROWS, logits_out=logits_file,
                                    extra=("--checkpoint", checkpoint))
    ours = interop.qshard_eval(model_dir, tokens, extra=("--checkpoint", checkpoint))
    ours_dir = interop.qshard_eval(gptq_dir, tokens)
    assert ours_dir["perplexity"] == ours["perplexity"], (ours_dir, ours)
    vocab = 512
    ours_logits = np.fromfile(logits_file, dtype="<f4").reshape(LOGIT_ROWS, interop.SEQ_LEN, vocab)
    assert ours_rows["logits_shape"] == [LOGIT_ROWS * interop.SEQ_LEN, vocab]

    client = interop.load_hf_gptq(gptq_dir)
    packed = interop.quantized_modules(client)
    assert set(packed) == interop.packed_in_directory(gptq_dir)
    assert len(packed) == PACKED[bits], sorted(packed)
    eval_rows = interop.read_tokens(tokens)
    client_logits = interop.logits(client, eval_rows[:LOGIT_ROWS])
    client_ppl, predictions = interop.perplexity(client, eval_rows)
    assert predictions == ours["predictions"] == 65280

    dense = interop.load_hf_dense(float_dir)
    dense_logits = interop.logits(dense, eval_rows[:LOGIT_ROWS])
    # The same dense model with the packed modules' weights rounded to fp16, as TorchLinear
    # dequantizes them: it should reproduce the client's logits up to the summation order.
    with torch.no_grad():
        for module_name in packed:
            weight = dense.get_submodule(module_name).weight
            weight.copy_(weight.half().float())
    rounded_logits = interop.logits(dense, eval_rows[:LOGIT_ROWS])
    # ... and the client itself, computing the same dequantization with fp32 scales, qshard's.
    interop.use_fp32_scales(client)
    exact_logits = interop.logits(client, eval_rows[:LOGIT_ROWS])

    scale = float(np.abs(ours_logits).max())
    max_diff = float(np.abs(client_logits - ours_logits).max())
    forward_diff = float(np.abs(dense_logits - ours_logits).max())
    fp16_diff = float(np.abs(client_logits - dense_logits).max())
    rounded_diff = float(np.abs(client_logits - rounded_logits).max())
    exact_diff = float(np.abs(exact_logits - ours_logits).max())
    ppl_rel = abs(client_ppl - ours["perplexity"]) / ours["perplexity"]
    interop.record(f"hf-load-stories260k-{name}", {
        "bits": bits, "group_size": group_size, "act_order": act_order,
        "logit_rows": LOGIT_ROWS, "max_abs_logit": scale,
        "max_abs_logit_diff_client_vs_qshard": max_diff,
        "max_rel_logit_diff_client_vs_qshard": max_diff / scale,
        "mean_abs_logit_diff_client_vs_qshard": float(np.abs(client_logits - ours_logits).mean()),
        "max_abs_logit_diff_hf_dense_vs_qshard": forward_diff,
        "max_abs_logit_diff_client_vs_hf_dense": fp16_diff,
        "max_abs_logit_diff_client_vs_hf_dense_fp16_rounded": rounded_diff,
        "max_abs_logit_diff_client_fp32_scales_vs_qshard": exact_diff,
        "qshard_perplexity": ours["perplexity"], "client_perplexity": client_ppl,
        "perplexity_rel_diff": ppl_rel})
    assert max_diff / scale < 1e-2
    assert forward_diff / scale < 1e-4  # same fp32 weights: only the summation orders differ
    assert rounded_diff / scale < 1e-4  # the rest is the client's fp16 dequantization
    assert exact_diff / scale < 1e-4
    assert ppl_rel < 5e-3
