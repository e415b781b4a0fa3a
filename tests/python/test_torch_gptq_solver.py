"""bench/gptq_torch_baseline.py's PyTorch GPTQ solver, which bench/reference_gptq.py drives through
a whole model as the third implementation of docs/QUALITY.md.

Two references written here, neither of them the solver's column loop:
- with a diagonal Hessian GPTQ has no error to propagate, so every bit width, group size (a partial
  last group included), per-row groups, act_order and a dead input must give exactly the
  round-to-nearest weights of a numpy min/max quantizer over the same groups (in act_order's
  column order when act_order is on);
- with correlated inputs its proxy loss tr((W - Q) H (W - Q)^T) must be well below
  round-to-nearest's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gptq_torch_baseline import gptq, prepare  # noqa: E402

ROWS, COLUMNS = 24, 200  # 200 = 1.5625 x 128: a partial last group at 128 and 64


def rtn(weight: np.ndarray, bits: int, group: int, order: np.ndarray) -> np.ndarray:
    """Round to nearest over groups of `group` columns taken in `order` (all columns: group <= 0)."""
    maxq = 2**bits - 1
    out = np.empty_like(weight)
    width = group if group > 0 else weight.shape[1]
    for start in range(0, weight.shape[1], width):
        columns = order[start:start + width]
        block = weight[:, columns]
        xmin = np.minimum(block.min(axis=1), 0.0)
        xmax = np.maximum(block.max(axis=1), 0.0)
        empty = (xmin == 0) & (xmax == 0)
        xmin[empty], xmax[empty] = -1.0, 1.0
        scale = ((xmax - xmin) / maxq)[:, None]
        zero = np.round(-xmin / scale[:, 0])[:, None]
        codes = np.clip(np.round(block / scale) + zero, 0, maxq)
        out[:, columns] = scale * (codes - zero)
    return out


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("group", [32, 128, -1])
@pytest.mark.parametrize("act_order", [False, True])
def test_diagonal_hessian_gives_round_to_nearest(bits, group, act_order):
    generator = torch.Generator().manual_seed(bits * 1000 + group)
    weight = torch.randn(ROWS, COLUMNS, generator=generator, dtype=torch.float64)
    diagonal = torch.rand(COLUMNS, generator=generator, dtype=torch.float64) + 0.1
    diagonal[17] = 0.0  # a dead input: its weights are zeroed
    hinv, dead, perm = prepare(torch.diag(diagonal), act_order)
    result = gptq(weight, hinv, dead, perm, bits, group).numpy()

    expected_weight = weight.numpy().copy()
    expected_weight[:, 17] = 0.0
    order = np.argsort(-np.where(diagonal.numpy() == 0, 1.0, diagonal.numpy()), kind="stable")
    if not act_order or group <= 0:
        order = np.arange(COLUMNS)
    expected = rtn(expected_weight, bits, group, order)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("group,act_order", [(128, False), (-1, False), (32, True)])
def test_correlated_inputs_lower_the_proxy_loss_below_round_to_nearest(group, act_order):
    generator = torch.Generator().manual_seed(7)
    basis = torch.randn(8, COLUMNS, generator=generator, dtype=torch.float64)
    x = torch.randn(4096, 8, generator=generator, dtype=torch.float64) @ basis
    x += 0.3 * torch.randn(4096, COLUMNS, generator=generator, dtype=torch.float64)
    hessian = 2.0 * x.T @ x / x.shape[0]
    weight = torch.randn(ROWS, COLUMNS, generator=generator, dtype=torch.float64)
    hinv, dead, perm = prepare(hessian, act_order)
    solved = gptq(weight, hinv, dead, perm, 3, group)
    order = np.argsort(-np.diag(hessian.numpy()), kind="stable") if act_order else np.arange(COLUMNS)
    rounded = torch.from_numpy(rtn(weight.numpy(), 3, group, order))

    def loss(q):
        d = weight - q
        return torch.trace(d @ hessian @ d.T).item()

    assert loss(solved) < 0.7 * loss(rounded), (loss(solved), loss(rounded))
