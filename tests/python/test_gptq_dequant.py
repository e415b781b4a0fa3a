"""Issue 7, test 2: the client's own dequantization of qshard's exported GPTQ tensors equals
qshard's dequantized weights, for bits 2, 3, 4 and 8, with and without act_order, sym and asym.

For each setting, qshard-quantize quantizes the synthetic:tiny model (hidden 128, intermediate
352: every module packs at every bit width), qshard-export writes it twice, as a GPTQ directory
(qweight/qzeros/scales/g_idx) and as a dense float directory of qshard's dequantized fp32 weights.
transformers + optimum load the GPTQ directory into GPTQModel's TorchLinear modules, whose
dequantize_weight() unpacks qweight and qzeros, applies g_idx and computes scale * (q - zero).

The expected agreement is exact, after one rounding: scales are fp16 (11-bit significand) and
q - zero an integer of at most 8 bits plus sign, so qshard's fp32 product scale * (q - zero) is
exact, while TorchLinear computes the same product in fp16 and rounds it once. Hence

    client_fp16 == fp16(qshard_fp32)   bitwise, for every weight,

and |client - qshard| <= 2^-11 |qshard| (half an fp16 ulp). Both zero-point formats are checked:
gptq (v1, zero - 1 stored; qshard-export refuses a zero of 0, which only asymmetric grids can
produce) and gptq_v2 (zeros as they are).
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

import interop

BITS = (2, 3, 4, 8)
SETTINGS = list(itertools.product(BITS, (False, True), (False, True)))  # bits, act_order, sym
HALF_ULP_FP16 = 2.0 ** -11


def _id(setting):
    bits, act_order, sym = setting
    return f"w{bits}-{'actorder' if act_order else 'noorder'}-{'sym' if sym else 'asym'}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dequant")


@pytest.mark.parametrize("setting", SETTINGS, ids=[_id(s) for s in SETTINGS])
def test_client_dequantization_equals_qshard(apps, workdir, setting):
    bits, act_order, sym = setting
    name = _id(setting)
    checkpoint = workdir / f"{name}.h5"
    interop.run_app("qshard-quantize", "--model", "synthetic:tiny", "--samples", 8,
                    "--seq_len", 128, "--bits", bits, "--group_size", 32,
                    "--act_order", int(act_order), "--sym", int(sym), "--out", checkpoint,
                    "--quiet")
    dense = workdir / f"{name}-float"
    interop.run_app("qshard-export", "--checkpoint", checkpoint, "--out", dense,
                    "--format", "float")
    reference = load_file(dense / "model.safetensors")

    # v1 always for symmetric grids (zeros 2^(bits-1)); for asymmetric ones v1 and v2.
    formats = ["gptq"] if sym else ["gptq", "gptq_v2"]
    for fmt in formats:
        out = workdir / f"{name}-{fmt}"
        try:
            interop.run_app("qshard-export", "--checkpoint", checkpoint, "--out", out,
                            "--checkpoint-format", fmt)
        except AssertionError as refused:
            # Only an asymmetric zero of 0 may stop a v1 export; then v2 must carry the test.
            assert fmt == "gptq" and not sym and "zero 0" in str(refused), refused
            assert "gptq_v2" in formats
            print(f"  {name} gptq (v1): refused as expected (a zero of 0)")
            continue
        config = json.loads((out / "config.json").read_text())["quantization_config"]
        assert (config["bits"], config["desc_act"], config["sym"], config["checkpoint_format"]) \
            == (bits, act_order, sym, fmt)

        model = interop.load_hf_gptq(out)
        modules = interop.quantized_modules(model)
        assert len(modules) == 28, sorted(modules)  # 4 layers x 7 linear modules, all packed
        weights = differing = 0
        worst = 0.0
        for module_name, module in modules.items():
            client = module.dequantize_weight().T  # TorchLinear: [in, out] -> [out, in]
            ours = reference[module_name + ".weight"]
            assert client.dtype == torch.float16 and client.shape == ours.shape, module_name
            if act_order:
                # act_order's g_idx is a real permutation of groups, not c // group_size
                assert not torch.equal(module.g_idx.long(),
                                       torch.arange(ours.shape[1]) // 32), module_name
            differing += int((client != ours.to(torch.float16)).sum())
            weights += ours.numel()
            scale = ours.abs().clamp_min(torch.finfo(torch.float32).tiny)
            worst = max(worst, ((client.float() - ours).abs() / scale).max().item())
        interop.record(f"dequant-{name}-{fmt}", {
            "bits": bits, "act_order": act_order, "sym": sym, "checkpoint_format": fmt,
            "modules": len(modules), "weights": weights,
            "weights_differing_from_fp16_of_qshard": differing,
            "max_relative_difference": worst})
        assert differing == 0, f"{differing} of {weights} dequantized weights differ"
        assert worst <= HALF_ULP_FP16, worst
