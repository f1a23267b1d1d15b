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
