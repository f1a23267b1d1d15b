"""ViT-S/16 (Dosovitskiy et al., 2021; DeiT-S shape) in timm's layout and module names.

Patch embedding by a 16x16/16 convolution, a class token, learned position embeddings,
pre-norm blocks whose attention calls ``scaled_dot_product_attention``, a final norm and
a classifier on the class token. Randomly initialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = ["Attention", "Block", "Mlp", "PatchEmbed", "VisionTransformer", "vit_s16"]


class PatchEmbed(nn.Module):
    """Image ``(B, 3, H, W)`` to patch tokens ``(B, H·W/p², d)``."""

    def __init__(self, patch: int, dim: int, channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nnf.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, s, d))


class Mlp(nn.Module):
    """``fc1``, GELU, ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + Mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT classifier.

    Parameters
    ----------
    image_size, patch : int
        ``image_size`` must be a multiple of ``patch``.
    dim, depth, heads : int
    mlp_ratio : int, default 4
    num_classes : int, default 1000
    """

    def __init__(self, image_size: int = 224, patch: int = 16, dim: int = 384,
                 depth: int = 12, heads: int = 6, mlp_ratio: int = 4,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size must be a multiple of patch={patch}, not {image_size!r}")
        tokens = (image_size // patch) ** 2 + 1
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_s16(image_size: int = 224, num_classes: int = 1000) -> VisionTransformer:
    """ViT-S/16: d=384, 6 heads, 12 layers; 22,050,664 parameters at 224x224, 1000 classes."""
    return VisionTransformer(image_size, 16, 384, 12, 6, 4, num_classes)
