"""Helpers of the interoperability tests: qshard's apps, and the GPTQ client on the CPU.

The client is Hugging Face transformers loading GPTQ directories through optimum with GPTQModel's
Torch kernel (``backend="torch"``, ``TorchLinear``), and GPTQModel's own quantizer for writing GPTQ
checkpoints. Everything runs on the CPU in float32 activations; GPTQModel keeps the scales in
float16 and dequantizes in float16 (``TorchLinear.dequantize_weight``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

# Before torch/GPTQModel are imported:
# - GPTQModel 7.7.0 sizes its CPU thread pool as (cores + 1) // 2 and then asks for a 2-worker
#   loader pool inside it, which fails on machines of 1-2 cores ("Virtual pool 'model_loader:cpu'
#   requests 2 workers but parent 'cpu' only has 1"): give it 2 workers.
# - TorchLinear wraps its dequantization in torch.compile; on the CPU that means an inductor C++
#   build per shape (tens of seconds on 2 cores) for the same arithmetic: run it eagerly.
# - No hub: every model here is a local directory.
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SEQ_LEN = 256


def client_versions() -> str:
    return ", ".join(
        f"{p} {version(p)}" for p in ("transformers", "optimum", "gptqmodel", "torch")
    )


# --- qshard's apps ------------------------------------------------------------------------------

def app(name: str) -> Path | None:
    """The app's path: $QSHARD_<NAME> (set by CTest from the build), else build/apps/NAME."""
    key = "QSHARD_" + name.removeprefix("qshard-").upper().replace("-", "_")
    value = os.environ.get(key)
    path = Path(value) if value else REPO / "build" / "apps" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def run_app(name: str, *args, timeout: int = 600) -> str:
    path = app(name)
    assert path is not None, f"{name} not built"
    command = [str(path), *map(str, args)]
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    print(f"  [{time.time() - start:5.1f} s] {path.name} {' '.join(map(str, args))}")
    return done.stdout


def qshard_eval(model: Path, tokens: Path, *, max_rows: int = -1, logits_out: Path | None = None,
                extra: tuple = (), seq_len: int = SEQ_LEN) -> dict:
    args = ["--model", model, "--tokens", tokens, "--seq_len", seq_len, "--json", *extra]
    if max_rows > 0:
        args += ["--max_rows", max_rows]
    if logits_out is not None:
        args += ["--logits-out", logits_out]
    lines = [line for line in run_app("qshard-eval", *args).splitlines() if line.startswith("{")]
    assert lines, "qshard-eval printed no JSON line"
    return json.loads(lines[-1])


def read_tokens(path: Path, rows: int | None = None, seq_len: int = SEQ_LEN) -> np.ndarray:
    tokens = np.fromfile(path, dtype="<i4").reshape(-1, seq_len)
    return tokens if rows is None else tokens[:rows]


# --- the client ---------------------------------------------------------------------------------

def load_hf_gptq(directory: Path):
    """transformers.AutoModelForCausalLM on a GPTQ directory, GPTQModel's Torch kernel, CPU."""
    import torch
    from transformers import AutoModelForCausalLM, GPTQConfig

    config = json.loads((directory / "config.json").read_text())["quantization_config"]
    # Only the loading attribute `backend` of this GPTQConfig is used; the rest comes from the
    # directory's own quantization_config.
    model = AutoModelForCausalLM.from_pretrained(
        directory, device_map="cpu", dtype=torch.float32,
        quantization_config=GPTQConfig(bits=config["bits"], backend="torch"))
    model.eval()
    kernels = {type(m).__name__ for m in model.modules() if hasattr(m, "qweight")}
    assert kernels == {"TorchLinear"}, f"expected GPTQModel's TorchLinear, got {kernels}"
    return model


def load_hf_dense(directory: Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, device_map="cpu", dtype=torch.float32)
    model.eval()
    return model


def quantized_modules(model) -> dict:
    return {name: m for name, m in model.named_modules() if type(m).__name__ == "TorchLinear"}


def use_fp32_scales(model) -> int:
    """Casts every TorchLinear's fp16 scales to fp32, in place.

    TorchLinear.dequantize_weight computes scales[g_idx] * (q - zeros[g_idx]) in the scales'
    dtype: with fp32 scales the client's own unpacking gives the exact products, as qshard does,
    and the fp16 rounding of the dequantized weights drops out of a comparison.
    """
    modules = quantized_modules(model)
    for module in modules.values():
        module.scales = module.scales.float()
        module.clear_weight_cache()
    return len(modules)


def packed_in_directory(directory: Path) -> set:
    """Names of the modules stored packed (with a qweight) in a GPTQ directory's safetensors."""
    from safetensors import safe_open

    names = set()
    for shard in sorted(directory.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            names |= {k.removesuffix(".qweight") for k in f.keys() if k.endswith(".qweight")}
    return names


def logits(model, tokens: np.ndarray, batch: int = 32) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(tokens), batch):
            ids = torch.from_numpy(tokens[i:i + batch].astype(np.int64))
            out.append(model(input_ids=ids).logits.float().numpy())
    return np.concatenate(out)


def perplexity(model, tokens: np.ndarray, batch: int = 32) -> tuple[float, int]:
    """exp(mean NLL) of every next-token prediction of every row, as qshard-eval counts them."""
    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(tokens), batch):
            ids = torch.from_numpy(tokens[i:i + batch].astype(np.int64))
            logp = torch.log_softmax(model(input_ids=ids).logits.double()[:, :-1], dim=-1)
            nll -= logp.gather(-1, ids[:, 1:, None]).sum().item()
            count += ids.shape[0] * (ids.shape[1] - 1)
    return math.exp(nll / count), count


def with_id_tokenizer(model_dir: Path, out: Path) -> Path:
    """A copy of a tokenizer-less model directory (links) plus an identity tokenizer.

    GPTQModel's loader always loads a tokenizer; stories260k has none (its data are token ids).
    The calibration is given as input_ids, so this word-level tokenizer (token `<i>` is id i)
    never tokenizes anything: it only satisfies the loader.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    config = json.loads((model_dir / "config.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.name == "config.json" or f.name.endswith((".safetensors", ".safetensors.index.json")):
            target = out / f.name
            if not target.exists():
                target.symlink_to(f.resolve())
    vocab = {f"<{i}>": i for i in range(config["vocab_size"])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<0>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<0>", pad_token="<0>",
        bos_token=f"<{config.get('bos_token_id', 1)}>",
        eos_token=f"<{config.get('eos_token_id', 2)}>").save_pretrained(out)
    return out


def gptqmodel_quantize(model_dir: Path, calibration: np.ndarray, out: Path, *, bits: int,
                       group_size: int, desc_act: bool, sym: bool, damp_percent: float) -> Path:
    """Quantizes with GPTQModel on the CPU (float32 model) and saves a GPTQ directory."""
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    config = QuantizeConfig(
        bits=bits, group_size=group_size, desc_act=desc_act, sym=sym, damp_percent=damp_percent,
        # qshard has no group-aware reordering (GAR): compare plain GPTQ.
        act_group_aware=False,
        # "original": GPTQModel's Python packer; "auto" JIT-compiles a C++ packer first.
        pack_impl="original", offload_to_disk=False)
    model = GPTQModel.load(str(with_id_tokenizer(model_dir, out.with_name(out.name + ".src"))),
                           config, device="cpu", dtype=torch.float32)
    rows = [{"input_ids": torch.from_numpy(r.astype(np.int64))[None],
             "attention_mask": torch.ones(1, len(r), dtype=torch.int64)} for r in calibration]
    model.quantize(rows, batch_size=4)
    model.save(str(out))
    shutil.rmtree(out.with_name(out.name + ".src"))
    return out


def write_generated_text(model, directory: Path, *, seq_len: int, calibration_rows: int = 64,
                         evaluation_rows: int = 16, seed: int = 7) -> tuple[Path, Path]:
    """Text of the model itself: sampled continuations of random first tokens, as little-endian
    int32 rows of seq_len tokens, written as calib.i32 and eval.i32 (no row in both)."""
    import torch

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ids = torch.randint(0, vocab, (calibration_rows + evaluation_rows, 1), generator=generator)
        for _ in range(seq_len - 1):
            probs = torch.softmax(model(input_ids=ids).logits[:, -1].double(), dim=-1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], dim=1)
    rows = ids.numpy().astype("<i4")
    calib, evaluation = directory / "calib.i32", directory / "eval.i32"
    rows[:calibration_rows].tofile(calib)
    rows[calibration_rows:].tofile(evaluation)
    return calib, evaluation


def record(name: str, result: dict) -> None:
    """Prints one result line; also writes it to $QSHARD_INTEROP_RESULTS/NAME.json if set."""
    result = {"test": name, "client": client_versions(), **result}
    line = json.dumps(result, sort_keys=True)
    print("INTEROP " + line)
    directory = os.environ.get("QSHARD_INTEROP_RESULTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(line + "\n")
    sys.stdout.flush()
