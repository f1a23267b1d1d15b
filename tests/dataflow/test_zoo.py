"""dataflow.zoo: architectures, parameter counts, example inputs, errors."""

import pytest
import torch

from dataflow.zoo import GPTConfig, get_model, model_names

# published parameter counts (torchvision, timm, EleutherAI Pythia with untied embeddings)
PUBLISHED = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "vit_s16": 22_050_664,
    "pythia70m": 70_426_624,
}


def test_model_names_are_the_zoo():
    assert model_names() == tuple(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    model, _ = get_model(name, device="meta")
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]


@pytest.mark.parametrize(
    "name, kw, in_shape, out_shape",
    [
        ("resnet18", {}, (2, 3, 224, 224), (2, 1000)),
        ("resnet50", {"num_classes": 10}, (2, 3, 224, 224), (2, 10)),
        ("vgg16", {"image_size": 64}, (2, 3, 64, 64), (2, 1000)),
        ("vit_s16", {}, (2, 3, 224, 224), (2, 1000)),
        ("pythia70m", {}, (2, 2048), (2, 2048, 50304)),
        ("pythia70m", {"seq_len": 128}, (2, 128), (2, 128, 50304)),
    ],
)
def test_example_input_and_output_shapes_on_meta(name, kw, in_shape, out_shape):
    model, x = get_model(name, batch=2, device="meta", **kw)
    assert tuple(x.shape) == in_shape and model.training
    assert tuple(model(x).shape) == out_shape


def test_resnet18_runs_on_cpu_at_small_resolution():
    torch.manual_seed(0)
    model, x = get_model("resnet18", batch=2, image_size=32, num_classes=7)
    y = model(x)
    assert y.shape == (2, 7) and torch.isfinite(y).all()


def test_small_gpt_is_causal_on_cpu():
    torch.manual_seed(0)
    model, x = get_model("pythia70m", batch=1, seq_len=12, vocab_size=50, d_model=32,
                         n_layers=2, n_heads=4)
    model.eval()
    y = model(x)
    x2 = x.clone()
    x2[0, 8] = (x2[0, 8] + 1) % 50
    y2 = model(x2)
    assert torch.allclose(y[0, :8], y2[0, :8], atol=1e-6)
    assert not torch.allclose(y[0, 8:], y2[0, 8:])


def test_bad_requests_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'resnet101'; known models are resnet18"):
        get_model("resnet101")
    with pytest.raises(ValueError, match="model 'vgg16' takes no option 'seq_len'"):
        get_model("vgg16", seq_len=4)
    with pytest.raises(ValueError, match="batch must be a positive integer, not 0"):
        get_model("resnet18", batch=0)
    with pytest.raises(ValueError, match="image_size must be a multiple of patch=16, not 100"):
        get_model("vit_s16", image_size=100, device="meta")
    with pytest.raises(ValueError, match="n_heads must divide d_model"):
        GPTConfig(n_heads=7)


def memoryformer_parameters(layers: int, d: int, vocab: int = 50_304, seq: int = 2048) -> int:
    """Tables K·2^tau·h, biases, LayerNorms, embeddings and the dense classifier, tau 8."""
    k, hidden = d // 8, 10 * d // 8
    tables = 3 * k * 256 * d + k * 256 * hidden + k * 1024 * d
    biases = 3 * d + hidden + d
    norms = 2 * d + 2 * d + 2 * hidden
    return (layers * (tables + biases + norms) + vocab * d + seq * d + 2 * d
            + d * vocab + vocab)


def test_lookup_family_lists_the_memoryformer_models():
    lookup = ("memoryformer_tiny", "memoryformer_small", "memoryformer_base")
    assert model_names("lookup") == lookup
    assert model_names("attmemo") == ("bert_base",)
    assert model_names("all") == tuple(PUBLISHED) + lookup + ("bert_base",)
    with pytest.raises(ValueError, match="family must be one of .*, not 'gpu'"):
        model_names("gpu")


def test_bert_base_has_bert_base_uncased_parameters_plus_a_classifier():
    # Hugging Face bert-base-uncased (BertModel, with the pooler): 109,482,240 parameters
    model, x = get_model("bert_base", batch=3, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 109_482_240 + 768 * 2 + 2
    assert x.shape == (3, 128)
    assert model(x).shape == (3, 2)
    _, x512 = get_model("bert_base", device="meta", seq_len=512)
    assert x512.shape == (1, 512)
    with pytest.raises(ValueError, match="at most max_positions=512"):
        get_model("bert_base", device="meta", seq_len=513)


@pytest.mark.parametrize("name, layers, d, heads", [
    ("memoryformer_tiny", 6, 512, 8),
    ("memoryformer_small", 12, 768, 12),
    ("memoryformer_base", 24, 1024, 16),
])
def test_memoryformer_pythia_shapes_on_meta(name, layers, d, heads):
    model, x = get_model(name, batch=2, device="meta", seq_len=64)
    config = model.config
    assert (config.n_layers, config.d_model, config.n_heads, config.tau) == (layers, d, heads, 8)
    assert config.num_tables == d // 8 and config.vocab_size == 50_304
    assert sum(p.numel() for p in model.parameters()) == memoryformer_parameters(layers, d)
    assert all(p.is_meta for p in model.parameters())
    assert tuple(x.shape) == (2, 64) and model.training
    assert tuple(model(x).shape) == (2, 64, 50_304)
    assert isinstance(model.head, torch.nn.Linear)  # the classifier stays dense


def test_memoryformer_decode_model_keeps_the_parameters_and_checks_the_context():
    full, _ = get_model("memoryformer_tiny", device="meta")
    model, x = get_model("memoryformer_tiny", batch=3, device="meta", seq_len=1, context=2047)
    assert tuple(x.shape) == (3, 1) and tuple(model(x).shape) == (3, 1, 50_304)
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        (n, p.shape) for n, p in full.named_parameters()]
    with pytest.raises(ValueError, match="context \\+ seq_len must be at most max_seq_len=2048"):
        get_model("memoryformer_tiny", device="meta", seq_len=2, context=2047)
    with pytest.raises(ValueError, match="context must be a non-negative integer, not -1"):
        get_model("memoryformer_tiny", device="meta", context=-1)
    with pytest.raises(ValueError, match="model 'memoryformer_base' takes no option 'image_size'"):
        get_model("memoryformer_base", image_size=4)


def test_small_memoryformer_decode_matches_the_full_sequence_on_cpu():
    torch.manual_seed(0)
    kw = dict(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=16, tau=4)
    full, x = get_model("memoryformer_tiny", batch=1, seq_len=6, **kw)
    step, _ = get_model("memoryformer_tiny", batch=1, seq_len=1, context=5, **kw)
    step.load_state_dict(full.state_dict())
    full.eval()
    step.eval()
    # the cache of position < 5 is the K and V the full model computes there
    cache, h = [], full.embed(x) + full.pos(torch.arange(6))
    for block in full.blocks:
        idx, w = block.q.hash(block.norm(h))
        k, v = (layer.lookup(idx, w).view(1, 6, 4, -1).transpose(1, 2)[:, :, :5]
                for layer in (block.k, block.v))
        cache.append((k, v))
        h = block(h)
    with torch.no_grad():
        assert torch.allclose(step(x[:, 5:], cache), full(x)[:, 5:], atol=1e-5)
