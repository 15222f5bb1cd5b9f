"""Swin-Transformer-ACmix: Swin Transformer whose window attention also runs ACmix's shift-convolution.

Implements ``SwinTransformer_acmix`` of the official ACmix code
(LeapLabTHU/ACmix, ``Swin-Transformer/models/swin_transformer_acmix.py``) with the same
state-dict keys, buffers (``relative_position_index`` in every block, ``attn_mask`` in
shifted blocks) and numerics, without timm. The model is fixed to its training resolution:
the shift masks and window layout are buffers computed from ``img_size``.

This is the reference form. ``acmix_deploy.rewrite`` produces the batch-agnostic deploy form.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -100.0  # what the official code writes between windows that a cyclic shift made adjacent


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/window * W/window, window, window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`; batch is inferred, never frozen."""
    x = windows.view(-1, height // window, width // window, window, window, windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, windows.shape[-1])


def relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) index into the (2*window-1)² relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def shift_attention_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(num_windows, window², window²) mask: 0 within a region, -100 across regions that a cyclic shift joined."""
    regions = torch.zeros(1, height, width, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            regions[:, hs, ws, :] = label
            label += 1
    labels = window_partition(regions, window).view(-1, window * window)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return torch.where(diff != 0, torch.tensor(MASK_VALUE), torch.tensor(0.0))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttentionACmix(nn.Module):
    """Window attention with relative position bias, plus ACmix's convolution path over the same qkv.

    ``fc`` mixes the 3*num_heads q/k/v heads into 9 maps per head channel; ``dep_conv`` (3x3,
    groups = head_dim, no bias in official checkpoints) turns them into ``dim`` channels.
    Output: ``rate1 * attention + rate2 * convolution``.
    """

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.window_size, self.num_heads = dim, (window, window), num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.fc = nn.Conv2d(3 * num_heads, 9, kernel_size=1, bias=True)
        self.dep_conv = nn.Conv2d(9 * head_dim, dim, kernel_size=3, bias=False, groups=head_dim, padding=1)
        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        with torch.no_grad():
            kernel = torch.zeros(9, 3, 3)
            for i in range(9):
                kernel[i, i // 3, i % 3] = 1.0
            self.dep_conv.weight.copy_(kernel.repeat(dim, 1, 1, 1))

    def relative_position_bias(self) -> torch.Tensor:
        """(num_heads, N, N) bias gathered from the table."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        heads, window = self.num_heads, self.window_size[0]
        qkv = self.qkv(x)

        # Convolution path.
        f_all = qkv.reshape(b, h * w, 3 * heads, -1).permute(0, 2, 1, 3)  # B, 3*heads, HW, head_dim
        f_conv = self.fc(f_all).permute(0, 3, 1, 2).reshape(b, 9 * c // heads, h, w)
        out_conv = self.dep_conv(f_conv).permute(0, 2, 3, 1)

        # Attention path.
        windows = window_partition(qkv, window)
        n = window * window
        windows = windows.view(-1, n, 3 * c)
        b_ = windows.shape[0]
        qkv_w = windows.reshape(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv_w[0], qkv_w[1], qkv_w[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + self.relative_position_bias().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n)
        attn = F.softmax(attn, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        out = self.proj(out).view(-1, window, window, c)
        out = window_reverse(out, window, h, w)
        return self.rate1 * out + self.rate2 * out_conv


class SwinBlockACmix(nn.Module):
    """One (shifted) window block. A stage no larger than the window uses one unshifted window."""

    def __init__(
        self, dim: int, resolution: tuple[int, int], num_heads: int, window: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.dim, self.input_resolution, self.num_heads = dim, resolution, num_heads
        if min(resolution) <= window:
            shift, window = 0, min(resolution)
        if not 0 <= shift < window:
            raise ValueError(f"shift ({shift}) must be in [0, window={window})")
        self.window_size, self.shift_size = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttentionACmix(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shift_attention_mask(*resolution, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, length, c = x.shape
        if length != h * w:
            raise ValueError(f"expected {h * w} tokens, got {length}")
        y = self.norm1(x).view(b, h, w, c)
        if self.shift_size:
            y = torch.roll(y, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        y = self.attn(y, mask=self.attn_mask)
        if self.shift_size:
            y = torch.roll(y, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, resolution: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.input_resolution, self.dim = resolution, dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class BasicLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlockACmix(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
            for i in range(depth)
        )
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, embed_dim: int, norm: bool) -> None:
        super().__init__()
        self.img_size, self.patch_size = (img_size, img_size), (patch_size, patch_size)
        self.patches_resolution = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"input is {tuple(x.shape[-2:])} px; this model was built for {self.img_size}")
        x = self.proj(x).flatten(2).transpose(1, 2)
        return x if self.norm is None else self.norm(x)


def _check_geometry(img_size: int, patch_size: int, window: int, n_stages: int) -> None:
    """Refuse sizes the official model cannot run, with a message instead of a reshape error."""
    if img_size % patch_size:
        raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
    side = img_size // patch_size
    for stage in range(n_stages):
        if side > window and side % window:
            raise ValueError(f"img_size {img_size}: stage {stage} is {side} px, not a multiple of window_size {window}")
        if stage < n_stages - 1 and side % 2:
            raise ValueError(f"img_size {img_size}: stage {stage} is {side} px, odd, so patch merging cannot halve it")
        side //= 2


class SwinACmix(nn.Module):
    """Swin-Transformer-ACmix classifier (official keys: ``patch_embed``, ``layers``, ``norm``, ``head``)."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 4,
        window_size: int = 7,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        ape: bool = False,
        patch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.img_size, self.patch_size, self.window_size = img_size, patch_size, window_size
        self.embed_dim, self.depths, self.num_heads = embed_dim, tuple(depths), tuple(num_heads)
        self.mlp_ratio, self.num_classes, self.ape, self.patch_norm = mlp_ratio, num_classes, ape, patch_norm
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        _check_geometry(img_size, patch_size, window_size, len(depths))
        self.patch_embed = PatchEmbed(img_size, patch_size, embed_dim, patch_norm)
        res = self.patch_embed.patches_resolution
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, res[0] * res[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            BasicLayer(
                embed_dim * 2**i,
                (res[0] // 2**i, res[1] // 2**i),
                depths[i],
                num_heads[i],
                window_size,
                mlp_ratio,
                downsample=i < len(depths) - 1,
            )
            for i in range(len(depths))
        )
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.ape:
            x = x + self.absolute_pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def hparams(self) -> dict:
        return {
            "img_size": self.img_size,
            "patch_size": self.patch_size,
            "window_size": self.window_size,
            "embed_dim": self.embed_dim,
            "depths": list(self.depths),
            "num_heads": list(self.num_heads),
            "mlp_ratio": self.mlp_ratio,
            "num_classes": self.num_classes,
            "ape": self.ape,
            "patch_norm": self.patch_norm,
        }
