"""Mixtures of experts (issue 18): tiny random Mixtral, Qwen2-MoE (a gated shared expert) and
Qwen3-MoE models made by transformers itself, saved as Hugging Face directories
(per-expert tensor names), and for each family

- qshard's CPU forward (`qshard-eval --logits_out`) against transformers' forward on the same
  tokens: routing (softmax, top-2, renormalised or not), every expert, within 1e-4 of the largest
  logit;
- qshard-quantize (GPTQ, 4 bits, group 32) on calibration text the model generated itself better
  than RTN in perplexity and KL on other generated text, with every expert's module holding the
  tokens routed to it (`@calibration_tokens`), and with --moe_calibration all;
- its qshard-export directory loaded by GPTQModel's own loader (the client of MoE GPTQ models:
  transformers 5 alone keeps its fused experts in floating point), every linear module packed,
  perplexity within 0.5 % of qshard-eval's. GPTQModel 7.7 knows Mixtral's experts only by the
  transformers-5 spelling (mlp.experts.N.gate_proj), so the Mixtral export's hub names
  (block_sparse_moe.experts.N.w1) are renamed for it here; the client loads non-quantized tensors
  in fp16, which is the remaining difference. GPTQModel's Qwen2-MoE layout has no dense MLP, so
  the tiny Qwen2-MoE has no mlp_only_layers here (tests/unit/model and tests/integration cover
  qshard's dense layers of a mixture of experts).
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch

import interop

SEQ = 64
VOCAB = 256
FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe")


def make_model(family: str):
    from transformers import (MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig,
                              Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM)

    common = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, dtype="float32")
    if family == "mixtral":
        return MixtralForCausalLM(MixtralConfig(num_local_experts=4, num_experts_per_tok=2,
                                                intermediate_size=96, sliding_window=None,
                                                **common))
    if family == "qwen2_moe":
        return Qwen2MoeForCausalLM(Qwen2MoeConfig(
            num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
            shared_expert_intermediate_size=96, intermediate_size=96, decoder_sparse_step=1,
            mlp_only_layers=[], norm_topk_prob=False, use_sliding_window=False, **common))
    return Qwen3MoeForCausalLM(Qwen3MoeConfig(
        num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, intermediate_size=96,
        head_dim=32, norm_topk_prob=True, use_sliding_window=False, attention_bias=False,
        **common))


@pytest.fixture(scope="module", params=FAMILIES)
def moe(request, tmp_path_factory):
    """A family's model, its directory and token files: 64 calibration and 16 evaluation rows."""
    family = request.param
    work = tmp_path_factory.mktemp(family)
    torch.manual_seed(20261204)
    model = make_model(family).eval()
    with torch.no_grad():  # weights large enough for a peaked next-token distribution
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("mlp.gate.weight"):  # the router: decisive routing
                p.normal_(0.0, 0.5)
            elif p.dim() >= 2:  # transformers 5 holds the experts fused, [experts, out, in]
                p.normal_(0.0, 0.3 if "embed" in name else 0.15)
    model_dir = work / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == family
    from safetensors import safe_open
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        names = set(f.keys())
    expert = ("model.layers.0.block_sparse_moe.experts.3.w2.weight" if family == "mixtral"
              else "model.layers.0.mlp.experts.3.down_proj.weight")
    assert expert in names, sorted(names)  # the per-expert names qshard reads
    calib, evaluation = interop.write_generated_text(model, work, seq_len=SEQ)
    return family, model, model_dir, calib, evaluation


def quantize(model_dir, calib, out, *extra):
    interop.run_app("qshard-quantize", "--model", model_dir, "--calib", calib, "--samples", 64,
                    "--seq_len", SEQ, "--bits", 4, "--group_size", 32, "--backend", "cpu",
                    "--out", out, "--quiet", *extra)


def test_forward_matches_transformers(apps, moe, tmp_path):
    family, model, model_dir, _, evaluation = moe
    logits_file = tmp_path / "logits.f32"
    ours = interop.qshard_eval(model_dir, evaluation, logits_out=logits_file, seq_len=SEQ,
                               extra=("--backend", "cpu"))
    tokens = interop.read_tokens(evaluation, seq_len=SEQ)
    ours_logits = np.fromfile(logits_file, dtype="<f4").reshape(len(tokens), SEQ, VOCAB)
    theirs = interop.logits(model, tokens)
    scale = float(np.abs(theirs).max())
    max_diff = float(np.abs(ours_logits - theirs).max())
    theirs_ppl, predictions = interop.perplexity(model, tokens)
    interop.record(f"{family}-tiny-forward", {"max_abs_logit": scale, "max_abs_logit_diff": max_diff,
                                              "qshard_perplexity": ours["perplexity"],
                                              "transformers_perplexity": theirs_ppl})
    assert predictions == ours["predictions"]
    assert max_diff / scale < 1e-4, (max_diff, scale)
    assert abs(theirs_ppl - ours["perplexity"]) / theirs_ppl < 1e-4


def test_qwen2_moe_with_a_dense_layer_and_biases_matches_transformers(apps, tmp_path):
    """mlp_only_layers (layer 1 a dense MLP inside a mixture of experts) and non-zero q/k/v
    biases (transformers initialises them to zero): qshard's forward as transformers'."""
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(11)
    model = Qwen2MoeForCausalLM(Qwen2MoeConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
        tie_word_embeddings=True, dtype="float32", num_experts=4, num_experts_per_tok=2,
        moe_intermediate_size=48, shared_expert_intermediate_size=80, intermediate_size=96,
        mlp_only_layers=[1], norm_topk_prob=False, use_sliding_window=False)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("_proj.bias"):
                p.normal_(0.0, 0.1)
            elif p.dim() >= 2:
                p.normal_(0.0, 0.5 if name.endswith("mlp.gate.weight") else 0.15)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    assert "model.layers.1.mlp.gate_proj.weight" in interop_names(model_dir)  # layer 1: dense
    tokens = np.random.default_rng(3).integers(0, VOCAB, (8, SEQ)).astype("<i4")
    token_file = tmp_path / "tokens.i32"
    tokens.tofile(token_file)
    logits_file = tmp_path / "logits.f32"
    interop.qshard_eval(model_dir, token_file, logits_out=logits_file, seq_len=SEQ,
                        extra=("--backend", "cpu"))
    ours = np.fromfile(logits_file, dtype="<f4").reshape(len(tokens), SEQ, VOCAB)
    theirs = interop.logits(model, tokens)
    scale = float(np.abs(theirs).max())
    max_diff = float(np.abs(ours - theirs).max())
    interop.record("qwen2_moe-dense-layer-forward", {"max_abs_logit": scale,
                                                      "max_abs_logit_diff": max_diff})
    assert max_diff / scale < 1e-4, (max_diff, scale)


def interop_names(model_dir) -> set:
    from safetensors import safe_open
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        return set(f.keys())


def expert_tokens(checkpoint, family: str) -> dict:
    """Layer 0's routed experts' gate modules: their @calibration_tokens by expert (h5dump, of
    the hdf5-tools that set-up installs)."""
    gate = "block_sparse_moe.experts.{}.w1" if family == "mixtral" else "mlp.experts.{}.gate_proj"
    tokens = {}
    for e in range(4):
        path = f"/layers/00000/{gate.format(e)}/calibration_tokens"
        dump = subprocess.run(["h5dump", "-a", path, str(checkpoint)], capture_output=True,
                              text=True, check=True).stdout
        tokens[e] = int(re.search(r"\(0\): (\d+)", dump).group(1))
    return tokens


def test_gptq_beats_rtn_and_the_export_loads_in_gptqmodel(apps, moe, tmp_path):
    family, _, model_dir, calib, evaluation = moe
    results = {}
    for method in ("rtn", "gptq"):
        quantize(model_dir, calib, tmp_path / f"{method}.h5", "--method", method)
        results[method] = interop.qshard_eval(
            model_dir, evaluation, seq_len=SEQ,
            extra=("--checkpoint", tmp_path / f"{method}.h5", "--backend", "cpu"))
    quantize(model_dir, calib, tmp_path / "all.h5", "--moe_calibration", "all")
    every = interop.qshard_eval(model_dir, evaluation, seq_len=SEQ,
                                extra=("--checkpoint", tmp_path / "all.h5", "--backend", "cpu"))
    fp = interop.qshard_eval(model_dir, evaluation, seq_len=SEQ, extra=("--backend", "cpu"))
    # Every token went to 2 of the 4 experts; with --moe_calibration all every expert saw all.
    routed = expert_tokens(tmp_path / "gptq.h5", family)
    assert sum(routed.values()) == 64 * SEQ * 2, routed
    assert set(expert_tokens(tmp_path / "all.h5", family).values()) == {64 * SEQ}

    export = tmp_path / "export"
    interop.run_app("qshard-export", "--checkpoint", tmp_path / "gptq.h5", "--model", model_dir,
                    "--out", export, "--checkpoint_format", "gptq_v2")
    if family == "mixtral":
        transformers5_names(export / "model.safetensors")
    interop.with_id_tokenizer(export, export)
    from gptqmodel import BACKEND, GPTQModel
    client = GPTQModel.load(str(export), device="cpu", backend=BACKEND.TORCH,
                            dtype=torch.float16).model.float().eval()
    packed = interop.quantized_modules(client)
    # Every linear module packed (the experts' widths are whole groups of 32): attention and 4
    # experts per layer, and Qwen2-MoE's shared expert.
    modules = 2 * (4 + 4 * 3 + (3 if family == "qwen2_moe" else 0))
    assert len(packed) == modules, sorted(packed)
    client_ppl, _ = interop.perplexity(client, interop.read_tokens(evaluation, seq_len=SEQ))
    ours = results["gptq"]["perplexity"]
    interop.record(f"{family}-tiny-w4g32", {
        "fp_perplexity": fp["perplexity"], "rtn_perplexity": results["rtn"]["perplexity"],
        "gptq_perplexity": ours, "gptq_all_tokens_perplexity": every["perplexity"],
        "rtn_kl": results["rtn"]["kl"], "gptq_kl": results["gptq"]["kl"],
        "client_perplexity": client_ppl, "expert_tokens_layer0": routed})
    assert ours < results["rtn"]["perplexity"]
    assert results["gptq"]["kl"] < results["rtn"]["kl"]
    assert every["perplexity"] < results["rtn"]["perplexity"]
    assert abs(client_ppl - ours) / ours < 5e-3, (client_ppl, ours)


def transformers5_names(path) -> None:
    """Mixtral's hub names (block_sparse_moe.experts.N.w1/w3/w2, block_sparse_moe.gate) as
    transformers 5 and GPTQModel 7.7 spell them (mlp.experts.N.gate_proj/up_proj/down_proj,
    mlp.gate)."""
    from safetensors.torch import load_file, save_file
    spelled = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
    tensors = load_file(path)
    renamed = {}
    for name, tensor in tensors.items():
        name = name.replace("block_sparse_moe.gate.weight", "mlp.gate.weight")
        name = re.sub(r"block_sparse_moe\.experts\.(\d+)\.(w[123])\.",
                      lambda m: f"mlp.experts.{m.group(1)}.{spelled[m.group(2)]}.", name)
        renamed[name] = tensor
    save_file(renamed, str(path), metadata={"format": "pt"})
