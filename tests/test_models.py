"""Every model maps (N, C, H, W) to (N, K) through `features` (N, D) and a replaceable head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regx.errors import ConfigError
from regx.models.cnn import SmallCNN
from regx.models.mlp import MLP
from regx.models.resnet import PreActResNet
from regx.models.torchvision_model import TorchvisionModel
from regx.models.wrn import WideResNet

CASES = [
    (MLP, {}, 8, 1),
    (SmallCNN, {}, 8, 1),
    (SmallCNN, {}, 32, 3),
    (PreActResNet, {"depth": 10, "width": 8}, 32, 3),
    (PreActResNet, {"depth": 18, "width": 4}, 8, 1),
    (WideResNet, {"depth": 10, "widen": 1}, 32, 3),
    (TorchvisionModel, {"name": "resnet18"}, 32, 1),
    (TorchvisionModel, {"name": "mobilenet_v3_small"}, 32, 3),
]


@pytest.mark.parametrize(("cls", "params", "size", "channels"), CASES)
def test_forward_is_head_of_features(cls, params, size, channels):
    torch.manual_seed(0)
    model = cls(num_classes=7, in_channels=channels, image_size=size, **params).eval()
    x = torch.randn(3, channels, size, size)
    feats = model.features(x)
    assert feats.shape == (3, model.feature_dim)
    out = model(x)
    assert out.shape == (3, 7)
    assert torch.allclose(out, model.head(feats), atol=1e-5)
    model.head = nn.Identity()  # the head is replaceable
    assert model(x).shape == (3, model.feature_dim)


def test_preact_resnet18_has_the_paper_size():
    model = PreActResNet(num_classes=10, in_channels=3, image_size=32, depth=18, width=64)
    n_params = sum(p.numel() for p in model.parameters())
    assert 11.1e6 < n_params < 11.25e6  # PreAct ResNet-18 on CIFAR-10: about 11.17 M


def test_wrn_28_10_has_the_paper_size():
    model = WideResNet(num_classes=10, in_channels=3, image_size=32, depth=28, widen=10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 36.4e6 < n_params < 36.6e6  # WRN-28-10: 36.5 M


@pytest.mark.parametrize(
    ("cls", "params", "key"),
    [
        (PreActResNet, {"depth": 12}, "depth"),
        (WideResNet, {"depth": 11}, "depth"),
        (SmallCNN, {"widths": []}, "widths"),
        (MLP, {"dropout": 1.0}, "dropout"),
        (TorchvisionModel, {"name": "not_a_model"}, "name"),
    ],
)
def test_bad_model_parameters_are_config_errors(cls, params, key):
    with pytest.raises(ConfigError) as err:
        cls(num_classes=10, in_channels=3, image_size=32, **params)
    assert err.value.key == key
