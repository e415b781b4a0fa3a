"""bench/gptq_zeros_v1_to_v2.py rewrites a v1 GPTQ checkpoint's zero points as gptq_v2 and repairs
the wrapped ones (a zero point of 0, stored in v1 as the field's largest value).

Two references, neither of them the script's numpy bit stream:
- qshard-export's C++ packer: for bits 2, 3, 4 and 8 the script's output from qshard's v1 export
  equals qshard's own gptq_v2 export of the same checkpoint, tensor for tensor;
- a per-field packer written here with Python integers (field j of a row occupies bits
  [j*bits, (j+1)*bits) of the row's little-endian stream of int32 words): zero points of 0 are
  planted in the v2 export, written as the wrapped v1 fields 2^bits - 1, and must come back as 0
  while every other field is unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import interop

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gptq_zeros_v1_to_v2.py"
BITS = (2, 3, 4, 8)


def field(words: np.ndarray, row: int, j: int, bits: int) -> int:
    value = 0
    for b in range(bits):
        position = j * bits + b
        word = int(words[row, position // 32]) & 0xFFFFFFFF
        value |= ((word >> (position % 32)) & 1) << b
    return value


def set_field(words: np.ndarray, row: int, j: int, bits: int, value: int) -> None:
    for b in range(bits):
        position = j * bits + b
        word = int(words[row, position // 32]) & 0xFFFFFFFF
        word = (word & ~(1 << (position % 32))) | (((value >> b) & 1) << (position % 32))
        words[row, position // 32] = np.array(word, dtype=np.uint32).view(np.int32)


def convert(source: Path, dest: Path) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), str(source), str(dest)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("zeros")


@pytest.mark.parametrize("bits", BITS, ids=[f"w{b}" for b in BITS])
def test_v1_to_v2_equals_qshard_v2_and_repairs_wrapped_zeros(apps, workdir, bits):
    checkpoint = workdir / f"w{bits}.h5"
    interop.run_app("qshard-quantize", "--model", "synthetic:tiny", "--samples", 8,
                    "--seq_len", 128, "--bits", bits, "--group_size", 32, "--out", checkpoint,
                    "--quiet")
    v2 = workdir / f"w{bits}-v2"
    interop.run_app("qshard-export", "--checkpoint", checkpoint, "--out", v2,
                    "--checkpoint-format", "gptq_v2")
    expected = load_file(v2 / "model.safetensors")  # torch: the float tensors may be bf16

    v1 = workdir / f"w{bits}-v1"
    try:
        interop.run_app("qshard-export", "--checkpoint", checkpoint, "--out", v1,
                        "--checkpoint-format", "gptq")
    except AssertionError as refused:  # a zero point of 0 has no v1 encoding
        assert "zero 0" in str(refused), refused
        print(f"  w{bits}: qshard-export refused v1 (a zero of 0); only the planted case runs")
    else:
        out = workdir / f"w{bits}-v1-to-v2"
        report = convert(v1, out)
        assert " 0 of " in report.splitlines()[-1], report  # qshard never writes a wrapped zero
        converted = load_file(out / "model.safetensors")
        assert converted.keys() == expected.keys()
        for name in expected:
            assert torch.equal(converted[name], expected[name]), name
        config = json.loads((out / "config.json").read_text())["quantization_config"]
        assert config["checkpoint_format"] == "gptq_v2"

    # Plant zero points of 0 and write the whole checkpoint as v1 with the per-field packer.
    planted_dir = workdir / f"w{bits}-planted-v1"
    shutil.copytree(v2, planted_dir)
    tensors = dict(expected)
    truth = {}
    rng = np.random.default_rng(bits)
    maxq = (1 << bits) - 1
    for name in sorted(n for n in tensors if n.endswith(".qzeros")):
        columns = tensors[name.removesuffix(".qzeros") + ".scales"].shape[1]
        zeros_v2 = tensors[name].numpy().copy()
        words_v1 = tensors[name].numpy().copy()
        rows = zeros_v2.shape[0]
        for _ in range(3):
            set_field(zeros_v2, int(rng.integers(rows)), int(rng.integers(columns)), bits, 0)
        for r in range(rows):
            for j in range(columns):
                set_field(words_v1, r, j, bits, (field(zeros_v2, r, j, bits) - 1) & maxq)
        truth[name] = zeros_v2
        tensors[name] = torch.from_numpy(words_v1)
    save_file(tensors, planted_dir / "model.safetensors", metadata={"format": "pt"})
    config_path = planted_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"]["checkpoint_format"] = "gptq"
    config_path.write_text(json.dumps(config))

    out = workdir / f"w{bits}-planted-v2"
    report = convert(planted_dir, out)
    converted = load_file(out / "model.safetensors")
    wrapped = 0
    for name, words in truth.items():
        columns = tensors[name.removesuffix(".qzeros") + ".scales"].shape[1]
        got = converted[name].numpy()
        for r in range(words.shape[0]):
            for j in range(columns):
                assert field(got, r, j, bits) == field(words, r, j, bits), (name, r, j)
                wrapped += field(words, r, j, bits) == 0
    assert wrapped >= len(truth)  # planted positions may coincide
    assert f" {wrapped} of " in report.splitlines()[-1], report
    for name in expected:
        if not name.endswith(".qzeros"):
            assert torch.equal(converted[name], expected[name]), name
