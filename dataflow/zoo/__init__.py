"""Model zoo: the architectures of the SAT reproduction and of the lookup engine, randomly
initialised.

No weights are downloaded. Build a model with :func:`get_model`; pass ``device="meta"`` to
get shapes without memory or arithmetic (enough for :func:`dataflow.workload.extract` and
for parameter counts).

==============  ===============================================  ==============
name            model                                            parameters
==============  ===============================================  ==============
``resnet18``    ResNet-18, 224x224                               11,689,512
``resnet50``    ResNet-50 (bottleneck, v1.5), 224x224            25,557,032
``vgg16``       VGG-16 with classifier, 224x224                  138,357,544
``vit_s16``     ViT-S/16, d=384, 6 heads, 12 layers, 224x224     22,050,664
``pythia70m``   Pythia-70M-shaped GPT, seq 2048, untied          70,426,624
==============  ===============================================  ==============

The lookup engine's models (family ``"lookup"``; :func:`model_names` lists the SAT family
unless asked): MemoryFormer in Pythia shapes, tau 8, ``K = d/8``, vocabulary 50,304, seq
2048, dense classifier (:mod:`dataflow.zoo.memoryformer`). The counts are ours (the tables
are almost all of them: ``K·2^tau·h`` entries per memory layer).

======================  =====================================  ==============
name                    model                                  parameters
======================  =====================================  ==============
``memoryformer_tiny``   6 layers, d=512, 8 heads               467,883,392
``memoryformer_small``  12 layers, d=768, 12 heads             1,947,562,368
``memoryformer_base``   24 layers, d=1024, 16 heads            6,749,238,400
======================  =====================================  ==============

AttMEMO's model (family ``"attmemo"``, :mod:`dataflow.memo`): ``bert_base``, a BERT-base-shaped
encoder (12 layers, d=768, 12 heads, FFN 3072, vocabulary 30,522, 512 positions, pooler and a
2-label classifier: 109,483,778 parameters), sequence 128 by default (``seq_len`` up to 512).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from algorithms.memoryformer import MemoryFormerConfig

from .bert import Bert, BertConfig, bert_base
from .gpt import GPT, GPTConfig, pythia70m
from .memoryformer import memoryformer
from .resnet import ResNet, resnet18, resnet50
from .vgg import VGG, vgg16
from .vit import VisionTransformer, vit_s16

__all__ = [
    "FAMILIES",
    "Bert",
    "BertConfig",
    "GPT",
    "VGG",
    "GPTConfig",
    "ResNet",
    "VisionTransformer",
    "bert_base",
    "get_model",
    "memoryformer",
    "model_names",
    "pythia70m",
    "resnet18",
    "resnet50",
    "vgg16",
    "vit_s16",
]

_VISION = {"resnet18": resnet18, "resnet50": resnet50, "vgg16": vgg16, "vit_s16": vit_s16}
_OPTIONS = {
    "resnet18": ("image_size", "num_classes"),
    "resnet50": ("image_size", "num_classes"),
    "vgg16": ("image_size", "num_classes"),
    "vit_s16": ("image_size", "num_classes"),
    "pythia70m": ("seq_len",) + tuple(GPTConfig.__dataclass_fields__),
}
_LOOKUP = {f"memoryformer_{size}": size for size in ("tiny", "small", "base")}
_OPTIONS.update(dict.fromkeys(
    _LOOKUP, ("seq_len", "context") + tuple(MemoryFormerConfig.__dataclass_fields__)))
_OPTIONS["bert_base"] = ("seq_len",) + tuple(BertConfig.__dataclass_fields__)

FAMILIES = MappingProxyType({
    "sat": ("resnet18", "resnet50", "vgg16", "vit_s16", "pythia70m"),
    "lookup": tuple(_LOOKUP),
    "attmemo": ("bert_base",),
})
"""Model names by the engine they are for: GEMM models for SAT, MemoryFormer for lookups."""


def model_names(family: str = "sat") -> tuple[str, ...]:
    """Names :func:`get_model` accepts, in report order.

    Parameters
    ----------
    family : {"sat", "lookup", "attmemo", "all"}, default "sat"
        ``"sat"``: the GEMM models that SAT trains (what the SAT reports and sweeps run);
        ``"lookup"``: the MemoryFormer models; ``"attmemo"``: the encoder AttMEMO memoizes
        (``bert_base``); ``"all"``: every model.

    Raises
    ------
    ValueError
        For an unknown family.
    """
    if family == "all":
        return tuple(_OPTIONS)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {(*FAMILIES, 'all')}, not {family!r}")
    return FAMILIES[family]


def get_model(name: str, *, batch: int = 1, device="cpu", **kw) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model and an example input batch.

    Parameters
    ----------
    name : str
        One of :func:`model_names`.
    batch : int, default 1
    device : str or torch.device, default "cpu"
        ``"meta"`` builds shapes only (fast, no memory).
    **kw
        Vision models: ``image_size`` (default 224), ``num_classes`` (default 1000).
        ``pythia70m``: ``seq_len`` (default 2048) and any :class:`GPTConfig` field.
        ``bert_base``: ``seq_len`` (default 128, at most ``max_positions``) and any
        :class:`BertConfig` field.
        ``memoryformer_*``: ``seq_len`` (default 2048), ``context`` (default 0: cached
        positions the ``seq_len`` new tokens also attend to; a decode step is ``seq_len=1``)
        and any :class:`MemoryFormerConfig` field (``max_seq_len`` bounds
        ``context + seq_len``).

    Returns
    -------
    model : nn.Module
        In training mode.
    example_input : torch.Tensor
        Images ``(batch, 3, image_size, image_size)`` or token ids ``(batch, seq_len)``.

    Raises
    ------
    ValueError
        For an unknown name, an option the model does not take, or a bad size (for
        MemoryFormer, ``context + seq_len`` above ``max_seq_len``).
    """
    if name not in _OPTIONS:
        raise ValueError(f"unknown model {name!r}; known models are {', '.join(_OPTIONS)}")
    bad = sorted(set(kw) - set(_OPTIONS[name]))
    if bad:
        raise ValueError(f"model {name!r} takes no option {bad[0]!r}; its options are "
                         f"{', '.join(_OPTIONS[name])}")
    for key, value in (("batch", batch), ("image_size", kw.get("image_size", 224)),
                       ("seq_len", kw.get("seq_len", 128 if name == "bert_base" else 2048))):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, not {value!r}")
    if name in _LOOKUP:  # before the tables are built
        context, seq = kw.get("context", 0), kw.get("seq_len", 2048)
        limit = kw.get("max_seq_len", MemoryFormerConfig.preset(_LOOKUP[name]).max_seq_len)
        if isinstance(context, int) and isinstance(limit, int) and context + seq > limit:
            raise ValueError(f"context + seq_len must be at most max_seq_len={limit}, not "
                             f"{context + seq}; pass max_seq_len")
    with torch.device(device):
        if name == "pythia70m":
            seq = kw.pop("seq_len", 2048)
            model = pythia70m(**kw)
            x = torch.randint(0, model.config.vocab_size, (batch, seq))
        elif name == "bert_base":
            seq = kw.pop("seq_len", 128)
            model = bert_base(**kw)
            if seq > model.config.max_positions:
                raise ValueError(f"seq_len must be at most max_positions="
                                 f"{model.config.max_positions}, not {seq}")
            x = torch.randint(0, model.config.vocab_size, (batch, seq))
        elif name in _LOOKUP:
            seq = kw.pop("seq_len", 2048)
            model = memoryformer(_LOOKUP[name], **kw)
            x = torch.randint(0, model.config.vocab_size, (batch, seq))
        else:
            size = kw.pop("image_size", 224)
            model = _VISION[name](**({"image_size": size} if name == "vit_s16" else {}), **kw)
            x = torch.randn(batch, 3, size, size)
    return model, x
