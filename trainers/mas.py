"""Monotonic alignment search (MAS) for StyleTTS2's text aligner, in StyleTTS2's layout [batch, text, mel].

The search runs in the Cython extension bin/bootstrap builds (PyPI `monotonic-align`, the VITS layout
[batch, mel, text]), so tensors are transposed on the way in and out. `brute_force` is the reference
dynamic programme the tests compare it with.
"""
from __future__ import annotations

import numpy as np
import torch


def mask_from_lens(attn: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    """[batch, text, mel] bool: True inside each item's (text length x mel length) rectangle."""
    batch, text, mel = attn.shape
    rows = torch.arange(text, device=attn.device)[None, :, None] < text_lengths.to(attn.device)[:, None, None]
    cols = torch.arange(mel, device=attn.device)[None, None, :] < mel_lengths.to(attn.device)[:, None, None]
    return rows & cols


def maximum_path(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The monotonic path (each mel frame to one token, tokens in order, none skipped) of highest total
    attention, as a 0/1 tensor of attn's shape."""
    from monotonic_align import maximum_path as vits_maximum_path

    path = vits_maximum_path(attn.detach().transpose(1, 2).float().contiguous(),
                             mask.transpose(1, 2).float().contiguous())
    return path.transpose(1, 2).to(attn.dtype)


def brute_force(values: np.ndarray) -> np.ndarray:
    """Reference MAS on one [text, mel] matrix: dynamic programme over monotonic paths that start at
    (0, 0), end at (text-1, mel-1) and move one frame right, staying or stepping one token down."""
    text, mel = values.shape
    best = np.full((text, mel), -np.inf)
    best[0, 0] = values[0, 0]
    for j in range(1, mel):
        for i in range(min(j + 1, text)):
            stay = best[i, j - 1]
            step = best[i - 1, j - 1] if i else -np.inf
            best[i, j] = values[i, j] + max(stay, step)
    path = np.zeros((text, mel), dtype=np.int64)
    i = text - 1
    for j in range(mel - 1, -1, -1):
        path[i, j] = 1
        if j and i and (i == j or best[i - 1, j - 1] > best[i, j - 1]):
            i -= 1
    return path
