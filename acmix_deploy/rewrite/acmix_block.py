"""Deploy form of one ACmix-ResNet block (ACmix + the BatchNorm after it), exact and export-friendly.

The official block gathers a 7x7 window per pixel with ``nn.Unfold`` (Gather-heavy im2col in
ONNX, ~1,200 nodes of mostly shape arithmetic for a small net) and computes the positional
encoding from a ``linspace`` grid at run time. Here (all folds computed in float64):

1. Positional encoding. The logit of window position j is ``q·(k_j + pe_q - pe_j)``. ``q·pe_q``
   is the same for every j of a query and softmax is shift-invariant, so the logits equal
   ``q·(k_j - pe_j)``: a constant map is subtracted from k before the reflect padding (padding
   commutes with point-wise ops). No positional branch remains at run time.
2. The attention scale goes into q's weights. ``fc`` (linear over the 3*head q/k/v heads) is
   folded with conv1/2/3 into the weights of a "f" projection. q, f, k, v come from ONE 1x1
   conv and one Split (stride 2: q from its own strided 1x1 conv, which equals ``conv1(x)[::2, ::2]``).
3. ``rate1`` and the BatchNorm scale go into v (softmax rows sum to 1, so v's bias, and with it the
   BatchNorm shift, passes straight through); ``rate2`` and the BatchNorm scale into ``dep_conv``.
4. The window attention is blocked ("halo") masked attention: the output map is cut into b x b
   query blocks; a block's keys/values are the (s*b + k_att - s)² patch of the reflect-padded k/v
   map around it. Tiles of the padded map are cut by one reshape/transpose, each halo is a tile
   plus the first k_att - s rows/columns of its lower/right neighbours (Slice + Concat, no
   Gather). ``logits = qᵀk + mask`` (0 inside the query's window, -1e4 outside: exp underflows to
   exactly 0 in fp32, and the value fits fp16), softmax over keys, ``v·attnᵀ``. Reflect padding
   duplicates border pixels; the official unfold counts those padded positions separately and so
   does this (same padded coordinates), so the result is exact. Maps of <= 16 px are one block.
   Two MatMuls replace 49 window products: fewer, larger operators (DESIGN.md §3).

Measured per block (ORT CPU, 2 cores, batch 1, noisy machine): 4-50x faster than the official
block in torch eager; max abs diff vs the official block 2-3e-6 (see tests/rewrite).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.acmix_resnet import ACmix, coordinate_grid

MASK_VALUE = -1e4


def default_block(side_out: int, stride: int) -> int:
    """Query block side in output pixels (measured on ORT CPU: 56 -> 8, 28 -> 14 or 7 when strided).

    Whole map when it is small (<= 16 px) or when no preferred size divides it.
    """
    if side_out <= 16:
        return side_out
    preferred = (7, 8, 14) if stride > 1 else (8, 14, 7)
    for b in preferred:
        if side_out % b == 0 and stride * b >= 7 - stride:
            return b
    return side_out


class DeployACmix(nn.Module):
    """ACmix followed by BatchNorm, for a fixed (height, width) input; any batch."""

    def __init__(self, acmix: ACmix, bn: nn.BatchNorm2d | None, height: int, width: int, block: int | None = None):
        super().__init__()
        s, k_att = acmix.stride, acmix.kernel_att
        if acmix.kernel_conv != 3:
            raise ValueError("ACmix deploy form supports k_conv=3 (the official dep_conv hard-codes padding 1)")
        if height % s or width % s:
            raise ValueError(f"a stride-{s} ACmix needs even input sizes, got {height}x{width}")
        if height != width:
            raise ValueError("ACmix deploy form expects square feature maps")
        self.c, self.heads, self.hd = acmix.out_planes, acmix.head, acmix.head_dim
        self.cin, self.stride, self.k_att = acmix.in_planes, s, k_att
        self.pad = acmix.padding_att
        self.side_in, self.side_out = height, height // s
        self.block = block or default_block(self.side_out, s)
        if self.side_out % self.block:
            raise ValueError(f"block {self.block} does not divide the {self.side_out} px output map")
        self.n_blocks = self.side_out // self.block
        self.single = self.n_blocks == 1
        tile = s * self.block
        self.tile, self.tail = tile, k_att - s
        if self.single:
            self.halo = height + 2 * self.pad
            self.extra = 0
        else:
            if self.tail > tile:
                raise ValueError(f"block {self.block} is too small for a {k_att}x{k_att} window")
            self.halo = tile + self.tail
            # bottom/right rows so that (n_blocks + 1) whole tiles exist (negative: crop)
            self.extra = (self.n_blocks + 1) * tile - (height + 2 * self.pad)
        self._fold(acmix, bn)

    @torch.no_grad()
    def _fold(self, acmix: ACmix, bn: nn.BatchNorm2d | None) -> None:
        f64 = torch.float64
        c, heads, hd, cin, s = self.c, self.heads, self.hd, self.cin, self.stride

        def w(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
            return conv.weight.detach().to(f64).reshape(c, cin), conv.bias.detach().to(f64)

        (w1, b1), (w2, b2), (w3, b3) = w(acmix.conv1), w(acmix.conv2), w(acmix.conv3)
        rate1, rate2 = acmix.rate1.detach().to(f64).reshape(()), acmix.rate2.detach().to(f64).reshape(())
        if bn is not None:
            scale = bn.weight.detach().to(f64) / torch.sqrt(bn.running_var.detach().to(f64) + bn.eps)
            shift = bn.bias.detach().to(f64) - bn.running_mean.detach().to(f64) * scale
        else:
            scale, shift = torch.ones(c, dtype=f64), torch.zeros(c, dtype=f64)

        q_scale = float(hd) ** -0.5
        wq, bq = w1 * q_scale, b1 * q_scale
        v_scale = rate1 * scale
        wv, bv = w3 * v_scale[:, None], b3 * v_scale + shift
        # f[d*9 + m] = sum_{t,h} fc[m, t*heads + h] * T_t[h*hd + d]  (T = conv1, conv2, conv3 of x)
        fc = acmix.fc.weight.detach().to(f64).reshape(9, 3, heads)
        wf = torch.einsum("mth,thdi->dmi", fc, torch.stack([w1, w2, w3]).reshape(3, heads, hd, cin))
        bf = torch.einsum("mth,thd->dm", fc, torch.stack([b1, b2, b3]).reshape(3, heads, hd))
        self.n_f = hd * 9
        wf, bf = wf.reshape(self.n_f, cin), bf.reshape(self.n_f)

        parts_w = ([wq] if s == 1 else []) + [wf, w2, wv]
        parts_b = ([bq] if s == 1 else []) + [bf, b2, bv]
        self.register_buffer("w_in", torch.cat(parts_w).reshape(-1, cin, 1, 1).float())
        self.register_buffer("b_in", torch.cat(parts_b).float())
        if s > 1:
            self.register_buffer("w_q", wq.reshape(c, cin, 1, 1).float())
            self.register_buffer("b_q", bq.float())
        dep = acmix.dep_conv.weight.detach().to(f64) * (rate2 * scale)[:, None, None, None]
        self.register_buffer("w_conv", dep.float())
        dep_bias = acmix.dep_conv.bias
        self.register_buffer(
            "b_conv", None if dep_bias is None else (dep_bias.detach().to(f64) * rate2 * scale).float()
        )

        grid = coordinate_grid(self.side_in, self.side_in, dtype=f64)
        pe = F.conv2d(grid, acmix.conv_p.weight.detach().to(f64), acmix.conv_p.bias.detach().to(f64))
        minus_pe = -pe.repeat(1, heads, 1, 1)
        self.register_buffer("pe_kv", torch.cat([minus_pe, torch.zeros_like(minus_pe)], 1).float())

        b = self.block
        u = torch.arange(b)
        pos = torch.arange(self.halo)
        inside = (pos[None, :] >= s * u[:, None]) & (pos[None, :] < s * u[:, None] + self.k_att)  # (b, halo)
        ok = inside[:, None, :, None] & inside[None, :, None, :]  # (b, b, halo, halo)
        mask = torch.where(ok, 0.0, MASK_VALUE).reshape(b * b, self.halo * self.halo)
        self.register_buffer("mask", mask.float())

    def _halos(self, kv: torch.Tensor) -> torch.Tensor:
        """(B, 2C, Hp, Wp) padded k|v -> (2, B*heads*nb*nb, hd, halo²) without Gather."""
        nb, tile, tail, hd = self.n_blocks, self.tile, self.tail, self.hd
        kv = kv.reshape(-1, 2, self.heads, hd, nb + 1, tile, nb + 1, tile)
        kv = kv.permute(1, 0, 2, 4, 6, 3, 5, 7)  # 2, B, heads, nb+1, nb+1, hd, tile, tile
        kv = torch.cat([kv[:, :, :, :nb], kv[:, :, :, 1:, :, :, :tail]], 6)
        kv = torch.cat([kv[:, :, :, :, :nb], kv[:, :, :, :, 1:, :, :, :tail]], 7)
        return kv.reshape(2, -1, hd, self.halo * self.halo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, hd, heads, b, p = self.c, self.hd, self.heads, self.block, self.pad
        y = F.conv2d(x, self.w_in, self.b_in)
        if self.stride == 1:
            q, f, kv = torch.split(y, [c, self.n_f, 2 * c], 1)
        else:
            q = F.conv2d(x, self.w_q, self.b_q, stride=self.stride)
            f, kv = torch.split(y, [self.n_f, 2 * c], 1)
        kv = kv + self.pe_kv  # k - pe; v unchanged

        side = self.side_out
        if self.single:
            kv = F.pad(kv, (p, p, p, p), mode="reflect")
            k, v = torch.split(kv, [c, c], 1)
            k, v = k.reshape(-1, hd, self.halo * self.halo), v.reshape(-1, hd, self.halo * self.halo)
            qb = q.reshape(-1, hd, side * side)
        else:
            extra = self.extra
            kv = F.pad(kv, (p, p + max(extra, 0), p, p + max(extra, 0)), mode="reflect")
            if extra < 0:
                full = (self.n_blocks + 1) * self.tile
                kv = kv[:, :, :full, :full]
            k, v = torch.split(self._halos(kv), [1, 1], 0)
            k, v = k.reshape(-1, hd, self.halo * self.halo), v.reshape(-1, hd, self.halo * self.halo)
            nb = self.n_blocks
            qb = q.reshape(-1, hd, nb, b, nb, b).permute(0, 2, 4, 1, 3, 5).reshape(-1, hd, b * b)
        attn = torch.softmax(torch.matmul(qb.transpose(1, 2), k) + self.mask, dim=-1)
        out = torch.matmul(v, attn.transpose(1, 2))  # (N, hd, b²)
        if not self.single:
            nb = self.n_blocks
            out = out.reshape(-1, heads, nb, nb, hd, b, b).permute(0, 1, 4, 2, 5, 3, 6)
        out_att = out.reshape(-1, c, side, side)
        out_conv = F.conv2d(f, self.w_conv, self.b_conv, self.stride, 1, 1, hd)
        return out_att + out_conv


def deploy_acmix(acmix: ACmix, bn: nn.BatchNorm2d | None, height: int, width: int) -> DeployACmix:
    return DeployACmix(acmix, bn, height, width).eval()
