"""Deploy form of one ACmix-ResNet block (ACmix + the BatchNorm after it), exact and export-friendly.

The official block gathers a 7x7 window per pixel with ``nn.Unfold`` (Gather-heavy im2col in
ONNX, ~1,200 nodes of mostly shape arithmetic for a small net) and computes the positional
encoding from a ``linspace`` grid at run time. Here (all folds computed in float64):

1. One 1x1 conv computes q, k and v for every input pixel (3C channels, bias included). Its output
   channels are ordered ``(d, t, h)`` (head channel, which of q/k/v, head) rather than q|k|v, so
   that the convolution branch can read them directly (4.).
2. Positional encoding. The logit of window position j is ``q·(k_j + pe_q - pe_j)``. ``q·pe_q``
   is the same for every j of a query and softmax is shift-invariant, so the logits equal
   ``q·(k_j - pe_j)``: a constant map is subtracted from k before the reflect padding (padding
   commutes with point-wise ops). No positional branch remains at run time.
3. The attention scale goes into q's weights; ``rate1`` and the BatchNorm scale into v's.
4. Convolution branch. ``fc`` (a 1x1 conv over the 3*head q/k/v heads, per head channel d) and
   ``dep_conv`` (a 3x3 conv with groups = head_dim) are both linear and act on the same head
   channel d, so ``dep_conv ∘ fc`` is ONE 3x3 conv with groups = head_dim whose group d reads the
   12 channels ``(d, ·, ·)`` of the q/k/v tensor, i.e. the projection output of 1. as it is. This
   replaces the official 9*head_dim-channel dense projection of f (2.25 C x C_in MACs a pixel, 13%
   of the whole network) with 27 C extra MACs a pixel in the grouped conv. The q/v scales of 3. are
   divided out of its weights; ``rate2``, the BatchNorm scale and the BatchNorm shift (its bias:
   softmax rows sum to 1, so nothing else needs it) go into it too. For a strided block the
   projection runs at full resolution (the conv branch needs q there) and attention takes q with a
   strided Slice, which equals the official ``q[::2, ::2]``.
5. The window attention is blocked ("halo") masked attention: the output map is cut into b x b
   query blocks; a block's keys/values are the (s*b + k_att - s)² patch of the reflect-padded k/v
   map around it. Tiles of the padded map are cut by one reshape/transpose; a halo is its tile
   plus the first k_att - s rows/columns of its lower/right neighbours, built as ONE Concat of
   pieces (the tile, the right and lower strips, the corner: one Slice each, no Gather), so its
   keys are ordered piece by piece and the mask's columns follow that order. Against building
   the halo rows then columns (two rounds of Slice + Concat), ACmix-ResNet-50 interleaved
   (``scripts/bench_floor.py --onnx``): batch 1 -3.4% and -2.7%, batch 8 -2.2% and -5.7%; batch 8
   kernel profile: Slice 62.5 -> 41.1 ms, Concat 46.6 -> 28.1 ms. ``logits = q k + mask`` (0
   inside the query's window, -1e4 outside: exp underflows to exactly 0 in fp32, and the value
   fits fp16), softmax over keys, ``attn·v``. Reflect padding
   duplicates border pixels; the official unfold counts those padded positions separately and so
   does this (same padded coordinates), so the result is exact. Maps of <= 16 px are one block,
   whose keys are the map itself, unpadded: a map key that appears c times in a query's padded
   window (same k, pe included, same v) enters the mask as log c, since c e^l = e^(l + log c)
   (``_map_mask``). No Pad, and 196 instead of 400 keys a query at 14 px (49 instead of 169 at 7
   px). Whole ACmix-ResNet-50 against the padded one block, interleaved (``scripts/bench_floor.py
   --onnx``, 15 rounds): batch 1 -3.8% (79.3 -> 76.3 ms), batch 8 -3.4% (656 -> 634 ms).
   Two MatMuls replace 49 window products: fewer, larger operators. k and v are padded and cut
   into halos separately: a joint k|v pipeline needs a Split of the (3x larger) halo tensor.
6. Layout. One Transpose takes the projection output to (B, q|k|v, heads, H, W, hd) ("NHWC"),
   so every later copy (pad, tiles, halos, q blocks) moves whole hd-float vectors and the
   MatMuls read (N, positions, hd) operands. With several blocks the second MatMul computes
   ``vᵀ attnᵀ`` (both transposes fold into ORT's MatMul), an (N, hd, b²) output whose Transpose
   back to NCHW moves rows of b floats; a one-block map keeps ``attn v`` (the transposed form
   measured 30% slower there at batch 8). Then the convolution branch, which reads the NCHW
   projection, is added. Measured against the former NCHW form (whose q/k/v/out
   transposes each moved single floats), per block, ORT CPU, 2 threads, batch 1, interleaved:
   equal at 56 px, 7-25% faster at 28/14/7 px; the transposed second MatMul then saves 0.43 ms
   of output Transpose and costs 0.23 ms of MatMul at 56 px (kernel profile).

7. The attention output is reshaped to the conv branch's output shape (``reshape_as``: one Shape
   -> Reshape a block, the "reshape Y to X's dimensions" pattern of TensorRT's dynamic-shape guide;
   no shape arithmetic). With ``reshape(-1, ...)`` the exported batch is a new unknown dimension and
   ORT cannot fuse the branch sum and the residual Add + ReLU into its conv kernels. Whole
   ACmix-ResNet-50, interleaved (``scripts/bench_floor.py --onnx acmix_resnet50:before=OLD``): batch 1
   -3.2% (15 rounds, GEMM probe at 147 GFLOP/s) and -0.4% (21 rounds, a quiet machine at 181);
   batch 8 -5.1% and -1.3%; an earlier run -4.5% / -3%. Never slower.

Measured per block (ORT CPU, 2 cores, batch 1, noisy machine): 4-50x faster than the official
block in torch eager; max abs diff vs the official block 2-3e-6 (see tests/rewrite).

Tried and dropped (exact, measured interleaved against this form, whole ACmix-ResNet-50):
- Keeping the batch its own dimension in every reshape (an ONNX Reshape with 0, "copy", instead
  of -1, whose result ONNX names a new unknown dimension) so that ORT can prove each residual Add
  equal-shaped and fuse it with its ReLU into conv3's NCHWc kernel. The fusion happens (batch 1
  kernel profile: Add -2.0 ms, ReLU -1.7 ms, Reshape -0.6 ms), but with every shape known ORT's
  memory planner reuses buffers differently and the halo Slice/Concat/Transpose and the MatMuls
  get 1-2.5 ms slower each: equal at batch 1 and 8 (11-25 rounds; with ``enable_mem_reuse`` off
  both forms tie at ~119 ms). Restoring the batch only at the attention output is what 7. does.
- 4 px query blocks at 56 px with halos reaching two neighbour tiles (the window's useful share of
  the logits 25% -> 49%; its MatMuls alone measure 2.6 vs 3.1 ms a block at batch 1 in
  ``scripts/bench_window_matmuls.py``): the halo copies double and the whole model measured equal at
  batch 1 (105.7 / 112.1 vs 109.1 / 110.8 ms, two runs) and 4% slower at batch 8 (1058 vs 1016
  ms); 4 px blocks at 28 px too: +2% at batch 1. ``block=4`` stays available (exact, tested).
- q, k and v kept NCHW until one transpose each that both cuts them into blocks/tiles and moves
  hd innermost (padding and the pe add in NCHW): one transpose fewer per tensor, but those
  transposes move single floats across a 7-D permutation, and the whole model measured +34% at
  batch 1 and +20% at batch 8.
- q, k and v read from the projection in NHWC (a Transpose after its Conv, which ORT turns into a
  channels-last ReorderOutput), channels ordered (d // 4, t, h, d % 4) so that the conv branch's
  groups stay contiguous, and the head moves folded into the tile and q-block transposes: 24
  Transposes fewer, but the remaining ones move 4-float chunks of 8-D tensors and the pe Add
  broadcasts over a middle axis: Transpose kernels 6.0 -> 14.5 ms, Add 4.6 -> 7.6 ms, the whole
  model +18% at batch 1 and +14% at batch 8 (9 rounds, exact: max abs diff 1.5e-6).
- q/k/v without the Split: three 1x1 projections (or one, ordered q|k|v, and a contiguous Split)
  and the conv branch as three grouped convs, one per q/k/v (m = 2: half the zero-weight MACs of
  m = 4), summed in ORT's conv kernels: equal at batch 1, batch 8 -5% and +3% (two runs); m = 4:
  +2% / +3.5%.
- The attention output, the branch sum and its ReLU in NHWC (the output transpose then moves hd
  vectors, and ORT reads the conv branch out and conv3 in with channels-last NCHWc reorders, which
  it did): equal (batch 1 -1.2%, batch 8 +0.3%, 15 rounds, two copies of the current form at
  +0.1% / +0.7%).
- Folding the window mask into the first MatMul: the mask is ``r(row) + c(col)`` with each term a
  function of (key coordinate mod halo) and the query, so one-hot key coordinates appended to k
  and the matching 0/-1e4 rows appended to q compute ``q·k + mask`` in the MatMul, K 16 -> 44.
  At 56 px (196 x 64 x 196 logits) the Add it removes costs 2.2 ms, the MatMul 2.3 ms at K = 16,
  4.1 ms at K = 32 and 7.2 ms at K = 44 (microbenchmark, ORT, 2 threads).
- The branch sum and its ReLU fused into the conv branch's NCHWc kernel. ORT's NCHWc layout
  starts only at a Conv or a Pool, so an identity 1x1 MaxPool on the attention output, plus the
  output's shape built from the block input's batch (``Shape -> Slice -> Concat``, so that the conv
  output has one reader), let ORT take the sum into the conv as its Sum input and drop the
  ReorderOutput, Add, ReLU and ReorderInput around it (optimised graph: 48 -> 32 Adds, 16 -> 0
  ReLUs, 33 -> 17 ReorderOutputs). Exact. Batch-8 kernel profile: -16 ms of Add, ReorderOutput and
  ReLU, +6 ms of MaxPool and ReorderInput, about 1% of the kernel time. Whole ACmix-ResNet-50,
  interleaved, 11-15 rounds, with the shape edited into the exported graph as ``Shape(input, 0:1)
  -> Concat``: batch 1 -0.5%, -2.8%, -1.4%, batch 8 -5.2%, -2.5%, +2.1%; written in this module
  (ORT then folds the shape to ``[-1, C, H, W]``): batch 1 +6.0% and +0.6%, batch 8 +5.7% and +6.4%.
  Not a gain, and the MaxPool would be one more pass in a TensorRT engine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.acmix_resnet import ACmix, coordinate_grid

MASK_VALUE = -1e4


def default_block(side_out: int, stride: int) -> int:
    """Query block side in output pixels (measured on ORT CPU, NHWC form, batch 1 and 8).

    Stride 1: 56 -> 8, 28 -> 7, whole map at <= 16 px. At 28 px 7 px blocks (169 logits a
    query) beat 14 px blocks (400) by ~25%; at 56 px 7 and 8 tie; 4 px blocks (100 logits, but
    6x halo copies and 4x the tiny GEMMs) lose by 10-40%; at 14 px the whole map beats 7 px
    blocks by ~8%. Stride 2: a block of b output pixels reads a (2b + 5)² halo, so blocks stay
    small: 28 -> 4 (169 logits a query instead of 361 at b = 7: 4-11% faster), 14 -> 7 (361
    instead of 1156 for the whole map: 12% faster), whole map at <= 8 px. Whole map also when
    no preferred size divides the map.
    """
    if side_out <= (8 if stride > 1 else 16):
        return side_out
    preferred = (4, 7, 8, 14) if stride > 1 else (8, 7, 14)
    for b in preferred:
        if side_out % b == 0 and stride * b >= 7 - stride:
            return b
    return side_out


class DeployACmix(nn.Module):
    """ACmix followed by BatchNorm, for a fixed (height, width) input; any batch.

    ``block``: query block side (default: ``default_block``). ``conv_merge``: head channels per
    group of the conv-branch 3x3 conv. 1 is the exact structure (12 inputs, ``head`` outputs a
    group), which ORT runs with its slow generic grouped kernel; m > 1 widens each group with
    zero weights between head channels (48 -> 16 at m = 4, head 4), which ORT runs with its
    blocked NCHWc kernels. Those need a group's input and output channels in multiples of the
    CPU's NCHWc block: 8 with AVX2, 16 with AVX-512. m = 4 is the least merge that qualifies on
    both, so it is the default: the artifact is exported once and runs on either. On this AVX2
    machine m = 2 (24 -> 8) is faster: its conv kernels alone 13-15% at every ACmix-ResNet-50
    stage (``scripts/conv_forms.py``), the whole model 1.7% at batch 1 and 1.2% at batch 8
    (conv branch 8.5 -> 7.2 ms and 66.4 -> 56.7 ms, ``scripts/bench_floor.py --branches``), but on
    AVX-512 its groups fall back to the generic grouped kernel, which at m = 1 here runs the
    branch 1.4x slower than m = 2. m = 8 is slower again.
    """

    def __init__(
        self,
        acmix: ACmix,
        bn: nn.BatchNorm2d | None,
        height: int,
        width: int,
        block: int | None = None,
        conv_merge: int = 4,
    ):
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
            # one block: the keys are the map itself, unpadded (the mask carries the padding, see _fold)
            self.halo = height
            self.extra = 0
        else:
            self.halo = tile + self.tail
            # a halo reaches into this many following tiles (two when the window's tail is longer than
            # a tile: 4 px blocks of a 7x7 window); bottom/right rows so that many whole tiles exist
            self.neighbours = -(-self.tail // tile)
            self.extra = (self.n_blocks + self.neighbours) * tile - (height + 2 * self.pad)
        if self.hd % conv_merge:
            raise ValueError(f"conv_merge {conv_merge} does not divide head_dim {self.hd}")
        self.conv_groups = self.hd // conv_merge
        self._fold(acmix, bn, conv_merge)

    @torch.no_grad()
    def _fold(self, acmix: ACmix, bn: nn.BatchNorm2d | None, merge: int) -> None:
        f64 = torch.float64
        c, heads, hd, cin = self.c, self.heads, self.hd, self.cin

        def w(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
            return conv.weight.detach().to(f64).reshape(c, cin), conv.bias.detach().to(f64)

        (w1, b1), (w2, b2), (w3, b3) = w(acmix.conv1), w(acmix.conv2), w(acmix.conv3)
        rate1, rate2 = acmix.rate1.detach().to(f64).reshape(()), acmix.rate2.detach().to(f64).reshape(())
        if bn is not None:
            scale = bn.weight.detach().to(f64) / torch.sqrt(bn.running_var.detach().to(f64) + bn.eps)
            shift = bn.bias.detach().to(f64) - bn.running_mean.detach().to(f64) * scale
        else:
            scale, shift = torch.ones(c, dtype=f64), torch.zeros(c, dtype=f64)

        # Per-channel scales applied to q, k, v in the projection (channel h*hd + d). v's scale is
        # divided out of the conv-branch weights below, so it must not be 0; where it is (a pruned
        # BatchNorm channel, rate1 = 0) v stays unscaled and the attention output is scaled instead.
        v_scale = rate1 * scale
        self.post_scale = bool((v_scale == 0).any())
        v_in = torch.ones_like(v_scale) if self.post_scale else v_scale
        t_scale = torch.stack([torch.full((c,), float(hd) ** -0.5, dtype=f64), torch.ones(c, dtype=f64), v_in])
        w_t = torch.stack([w1, w2, w3]) * t_scale[..., None]  # (3, C, cin), C index = h*hd + d
        b_t = torch.stack([b1, b2, b3]) * t_scale
        # reorder output channels (t, h, d) -> (d, t, h)
        self.register_buffer(
            "w_in", w_t.reshape(3, heads, hd, cin).permute(2, 0, 1, 3).reshape(3 * c, cin, 1, 1).float()
        )
        self.register_buffer("b_in", b_t.reshape(3, heads, hd).permute(2, 0, 1).reshape(3 * c).float())
        self.register_buffer("v_post", v_scale.reshape(c, 1, 1).float() if self.post_scale else None)

        # conv branch: out[d*heads + o] = sum_{m,taps} dep[d*heads + o, m] * f[d*9 + m] with
        # f[d*9 + m] = sum_{t,h} fc[m, t*heads + h] * T_t[h*hd + d] and T_t = y_t / t_scale.
        dep = acmix.dep_conv.weight.detach().to(f64) * (rate2 * scale)[:, None, None, None]  # (C, 9, 3, 3)
        fc = acmix.fc.weight.detach().to(f64).reshape(9, 3, heads)
        dep = dep.reshape(hd, heads, 9, 3, 3)  # (d, o, m, kh, kw)
        inv = (1.0 / t_scale).reshape(3, heads, hd)  # (t, h, d)
        wg = torch.einsum("domyx,mth,thd->dothyx", dep, fc, inv).reshape(hd, heads, 3 * heads, 3, 3)
        # groups of `merge` head channels: a block-diagonal weight (zeros between different d)
        # lets ORT use its blocked (NCHWc) kernels when a group has >= 8 inputs/outputs.
        groups = hd // merge
        wm = torch.zeros(groups, merge, heads, merge, 3 * heads, 3, 3, dtype=f64)
        for i in range(merge):
            wm[:, i, :, i] = wg[i::merge]
        self.register_buffer("w_conv", wm.reshape(c, merge * 3 * heads, 3, 3).float())
        b_conv = shift.clone()
        if acmix.dep_conv.bias is not None:
            b_conv += acmix.dep_conv.bias.detach().to(f64) * rate2 * scale
        self.register_buffer("b_conv", b_conv.float())

        grid = coordinate_grid(self.side_in, self.side_in, dtype=f64)
        pe = F.conv2d(grid, acmix.conv_p.weight.detach().to(f64), acmix.conv_p.bias.detach().to(f64))[0]
        # k is laid out (B, heads, H, W, hd): -pe as (H, W, hd), the same for every head
        self.register_buffer("pe_k", -pe.permute(1, 2, 0).contiguous().float())

        self.register_buffer("mask", (self._map_mask() if self.single else self._halo_mask()).float())

    def _halo_mask(self) -> torch.Tensor:
        """(b², halo²): 0 where a halo key is in the query's window, MASK_VALUE elsewhere; keys in the
        order _windows concatenates its pieces."""
        b = self.block
        u = torch.arange(b)
        pos = torch.arange(self.halo)
        inside = (pos[None, :] >= self.stride * u[:, None]) & (pos[None, :] < self.stride * u[:, None] + self.k_att)
        ok = inside[:, None, :, None] & inside[None, :, None, :]  # (b, b, halo, halo)
        mask = torch.where(ok, 0.0, MASK_VALUE).reshape(b * b, self.halo * self.halo)
        return mask[:, self._key_order()]

    def _map_mask(self) -> torch.Tensor:
        """(side_out², side_in²) for one block over the unpadded map: log c where a map key appears c
        times in the query's reflect-padded window, MASK_VALUE where it does not appear.

        The official window reads the reflect-padded k and v, so a key near the border can sit in a
        window twice or four times, with the same k (pe included: the official code pads pe the same
        way) and the same v. Softmax over those copies equals softmax over the key once with its
        logit raised by log c (c e^l = e^(l + log c)), in the weights and in the weighted sum.
        """
        f64 = torch.float64
        side_in, p = self.side_in, self.pad
        rows = self.stride * torch.arange(self.side_out)[:, None] + torch.arange(self.k_att)[None, :] - p
        rows = torch.where(rows < 0, -rows, torch.where(rows >= side_in, 2 * (side_in - 1) - rows, rows))
        counts = F.one_hot(rows, side_in).sum(1).to(f64)  # (side_out, side_in): copies of each map row
        c = counts[:, None, :, None] * counts[None, :, None, :]  # separable: rows x columns
        log_c = torch.where(c > 0, torch.log(c.clamp(min=1)), torch.full_like(c, MASK_VALUE))
        return log_c.reshape(self.side_out**2, side_in**2)

    def _segments(self) -> list[tuple[int, int]]:
        """A halo's rows (and columns) as (tile offset, length) pieces of the tile grid: whole tiles,
        then the first rows of the last one it reaches."""
        r = self.neighbours
        return [(j, self.tile) for j in range(r)] + [(r, self.tail - (r - 1) * self.tile)]

    def _key_order(self) -> torch.Tensor:
        """The halo position (row-major) of each key as _windows lays them out: piece by piece."""
        order = []
        for jr, rows in self._segments():
            for jc, cols in self._segments():
                y = jr * self.tile + torch.arange(rows)
                x = jc * self.tile + torch.arange(cols)
                order.append((y[:, None] * self.halo + x[None, :]).reshape(-1))
        return torch.cat(order)

    def _windows(self, t: torch.Tensor) -> torch.Tensor:
        """(B, heads, H, W, hd) k or v -> (B*heads*nb*nb, halo², hd): reflect-padded, cut into halos
        (one block: the unpadded map)."""
        nb, tile, hd, p = self.n_blocks, self.tile, self.hd, self.pad
        if self.single:
            return t.reshape(-1, self.halo * self.halo, hd)  # the map itself: no padding (_map_mask)
        extra, r = self.extra, self.neighbours
        if extra > p:
            # reflect padding cannot reach that far (4 px blocks): the rows beyond the last whole
            # block's halo are never inside a window (masked), so zeros do
            t = F.pad(t, (0, 0, p, p, p, p), mode="reflect")
            t = F.pad(t, (0, 0, 0, extra, 0, extra))
        else:
            t = F.pad(t, (0, 0, p, p + max(extra, 0), p, p + max(extra, 0)), mode="reflect")
        n = nb + r
        if extra < 0:
            t = t[:, :, : n * tile, : n * tile]
        t = t.reshape(-1, self.heads, n, tile, n, tile, hd).permute(0, 1, 2, 4, 3, 5, 6)
        # a halo's keys, piece by piece (this tile, the strips and corner of the next ones: one Slice
        # each once the graph passes merge the per-axis Slices), in ONE Concat; the mask follows
        # this key order (_key_order)
        pieces = [
            t[:, :, jr : nb + jr, jc : nb + jc, :rows, :cols].reshape(-1, self.heads, nb, nb, rows * cols, hd)
            for jr, rows in self._segments()
            for jc, cols in self._segments()
        ]
        return torch.cat(pieces, 4).reshape(-1, self.halo * self.halo, hd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hd, heads, b, s = self.hd, self.heads, self.block, self.stride
        h_in, side, nb = self.side_in, self.side_out, self.n_blocks
        y = F.conv2d(x, self.w_in, self.b_in)  # (B, 3C, H, W), channels (d, t, h)
        # one transpose to (B, 3, heads, H, W, hd): every later copy moves whole hd vectors
        qkv = y.reshape(-1, hd, 3, heads, h_in, h_in).permute(0, 2, 3, 4, 5, 1)
        q, k, v = (t.reshape(-1, heads, h_in, h_in, hd) for t in torch.split(qkv, 1, 1))
        if s > 1:
            q = q[:, :, ::s, ::s]  # the official q[::2, ::2]
        k, v = self._windows(k + self.pe_k), self._windows(v)  # k - pe
        if self.single:
            qb = q.reshape(-1, side * side, hd)
        else:
            qb = q.reshape(-1, heads, nb, b, nb, b, hd).permute(0, 1, 2, 4, 3, 5, 6).reshape(-1, b * b, hd)
        attn = torch.softmax(torch.matmul(qb, k.transpose(1, 2)) + self.mask, dim=-1)
        if self.single:
            out = torch.matmul(attn, v).reshape(-1, heads, side, side, hd).permute(0, 1, 4, 2, 3)
        else:
            # (attn v)ᵀ = vᵀ attnᵀ: both transposes fold into the MatMul, and the output transpose
            # to NCHW keeps rows of b floats together (an (N, b², hd) output moves single floats)
            out = torch.matmul(v.transpose(1, 2), attn.transpose(1, 2))  # (N, hd, b²)
            out = out.reshape(-1, heads, nb, nb, hd, b, b).permute(0, 1, 4, 2, 5, 3, 6)
        out_conv = F.conv2d(y, self.w_conv, self.b_conv, s, 1, 1, self.conv_groups)
        # reshaped to the conv output's shape (Shape -> Reshape), not to (-1, c, side, side): a -1
        # leaves ONNX a new unknown batch, so ORT could not prove the two summands (and the residual
        # Add after conv3) equal-shaped and fuse them into its conv kernels (see the module docstring)
        out_att = out.reshape_as(out_conv)
        if self.v_post is not None:
            out_att = out_att * self.v_post
        return out_att + out_conv


def deploy_acmix(acmix: ACmix, bn: nn.BatchNorm2d | None, height: int, width: int) -> DeployACmix:
    return DeployACmix(acmix, bn, height, width).eval()
