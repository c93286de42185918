"""Nearest-neighbour distances between record vectors, exact and blocked (CPU or GPU).

L1 distance on the encoded [0, 1] vectors; on 0/1 dimensions it is the Hamming distance, which
is computed with one matrix product (|a| + |b| - 2 a.b) instead of an element-wise pass.
"""

from __future__ import annotations

import numpy as np
import torch


def _pairwise_l1(a: torch.Tensor, b: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    d = torch.zeros(len(a), len(b), dtype=torch.float32, device=a.device)
    if bool(binary.any()):
        ab, bb = a[:, binary], b[:, binary]
        d += ab.sum(1)[:, None] + bb.sum(1)[None, :] - 2.0 * ab @ bb.T
    if bool((~binary).any()):
        d += torch.cdist(a[:, ~binary].contiguous(), b[:, ~binary].contiguous(), p=1)
    return d.clamp_min_(0.0)


def nearest(
    query: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 1,
    exclude_self: bool = False,
    block: int = 2048,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest L1 distances ``[len(query), k]`` and the reference rows they belong to.

    ``exclude_self`` drops the zero distance of a row to itself (query and reference identical).
    """
    query = np.asarray(query, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    q = torch.as_tensor(query, device=device)
    r = torch.as_tensor(reference, device=device)
    is_binary = np.all((reference == 0) | (reference == 1), axis=0) & np.all(
        (query == 0) | (query == 1), axis=0
    )
    binary = torch.as_tensor(is_binary, device=device)
    if k > len(r) - (1 if exclude_self else 0):
        raise ValueError(f"need more than {k} reference records")
    dists, idxs = [], []
    for i in range(0, len(q), block):
        d = _pairwise_l1(q[i : i + block], r, binary)
        if exclude_self:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + i] = float("inf")
        top = torch.topk(d, k, dim=1, largest=False)
        dists.append(top.values.cpu())
        idxs.append(top.indices.cpu())
    return torch.cat(dists).numpy().astype(np.float64), torch.cat(idxs).numpy()


def nearest_distances(query: np.ndarray, reference: np.ndarray, **kwargs) -> np.ndarray:
    return nearest(query, reference, **kwargs)[0]
