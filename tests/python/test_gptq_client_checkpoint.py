"""Issue 7, test 3: a GPTQ checkpoint written by the client is read and evaluated by qshard.

GPTQModel quantizes stories260k on the CPU (float32 model; calibration: the 128 rows of
calib_128x256.i32 as token ids, batches of 4; damp 0.01, no group-aware reordering) and saves a
GPTQ directory; unlike qshard-export it packs the 172-wide MLP too, padding the packed words.
`qshard-eval --model CLIENT_DIR` evaluates it on eval_256x256.i32 (65,280 predictions), and the
client evaluates its own directory (transformers + optimum + TorchLinear, as in test 1): the two
perplexities must agree within 0.5 %, and the logits of the first rows within 1 % of the largest
logit. That difference is the client's fp16 dequantization (TorchLinear rounds scale * (q - zero)
to fp16; qshard keeps the exact product in fp32): with its scales cast to fp32, the client's own
unpacking must give qshard's logits within 1e-4 of the largest logit. For the same settings,
qshard-quantize's own checkpoint is evaluated too, so that docs/QUALITY.md can show both tools'
quantizations side by side.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import interop

LOGIT_ROWS = 8
DAMP = 0.01
# (bits, group size, desc_act, sym)
SETTINGS = [(4, 32, False, True), (8, 32, True, True)]


def _id(setting):
    bits, group_size, desc_act, sym = setting
    return f"w{bits}g{group_size}{'-actorder' if desc_act else ''}-{'sym' if sym else 'asym'}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("client")


@pytest.mark.parametrize("setting", SETTINGS, ids=[_id(s) for s in SETTINGS])
def test_qshard_evaluates_gptqmodel_checkpoint(apps, shared, workdir, setting):
    bits, group_size, desc_act, sym = setting
    name = _id(setting)
    model_dir = shared / "models/stories260k"
    calib = shared / "data/stories260k/calib_128x256.i32"
    tokens = shared / "data/stories260k/eval_256x256.i32"

    client_dir = interop.gptqmodel_quantize(
        model_dir, interop.read_tokens(calib), workdir / f"{name}-gptqmodel", bits=bits,
        group_size=group_size, desc_act=desc_act, sym=sym, damp_percent=DAMP)
    config = json.loads((client_dir / "config.json").read_text())["quantization_config"]
    assert (config["bits"], config["group_size"], config["desc_act"], config["sym"]) == \
        (bits, group_size, desc_act, sym), config
    assert "gptqmodel:" in " ".join(config["meta"]["quantizer"])

    client = interop.load_hf_gptq(client_dir)
    packed = interop.quantized_modules(client)
    assert len(packed) == 5 * 7, sorted(packed)  # every linear module of the 5 layers
    eval_rows = interop.read_tokens(tokens)
    client_ppl, predictions = interop.perplexity(client, eval_rows)
    client_logits = interop.logits(client, eval_rows[:LOGIT_ROWS])

    logits_file = workdir / f"{name}-logits.f32"
    ours = interop.qshard_eval(client_dir, tokens)
    interop.qshard_eval(client_dir, tokens, max_rows=LOGIT_ROWS, logits_out=logits_file)
    ours_logits = np.fromfile(logits_file, dtype="<f4").reshape(client_logits.shape)
    assert ours["predictions"] == predictions == 65280

    # The client's own unpacking with fp32 scales, free of its fp16 rounding: qshard's reading of
    # the client's packed tensors is then exact up to the summation order.
    interop.use_fp32_scales(client)
    exact_logits = interop.logits(client, eval_rows[:LOGIT_ROWS])

    # qshard's own quantization at the same settings, for the side-by-side table
    checkpoint = workdir / f"{name}-qshard.h5"
    interop.run_app("qshard-quantize", "--model", model_dir, "--calib", calib, "--samples", 128,
                    "--seq_len", 256, "--batch_samples", 4, "--bits", bits,
                    "--group_size", group_size, "--act_order", int(desc_act), "--sym", int(sym),
                    "--damp_percent", DAMP, "--out", checkpoint, "--quiet")
    qshard_own = interop.qshard_eval(model_dir, tokens, extra=("--checkpoint", checkpoint))

    scale = float(np.abs(client_logits).max())
    max_diff = float(np.abs(client_logits - ours_logits).max())
    exact_diff = float(np.abs(exact_logits - ours_logits).max())
    ppl_rel = abs(ours["perplexity"] - client_ppl) / client_ppl
    interop.record(f"client-checkpoint-stories260k-{name}", {
        "bits": bits, "group_size": group_size, "desc_act": desc_act, "sym": sym,
        "damp_percent": DAMP, "calibration": "calib_128x256.i32, 128 x 256",
        "client_perplexity_of_client_checkpoint": client_ppl,
        "qshard_perplexity_of_client_checkpoint": ours["perplexity"],
        "perplexity_rel_diff": ppl_rel,
        "logit_rows": LOGIT_ROWS, "max_abs_logit": scale,
        "max_abs_logit_diff": max_diff, "max_rel_logit_diff": max_diff / scale,
        "max_abs_logit_diff_client_fp32_scales": exact_diff,
        "qshard_perplexity_of_qshard_checkpoint": qshard_own["perplexity"],
        "fp32_perplexity": qshard_own.get("reference_perplexity")})
    assert ppl_rel < 5e-3
    assert max_diff / scale < 1e-2
    assert exact_diff / scale < 1e-4
