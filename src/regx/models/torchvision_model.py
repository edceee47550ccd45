"""Any torchvision classification model by name (`model.name=resnet50`, `vit_b_16`, …).

The model's last `nn.Linear` (its classifier) is replaced by an identity, so the rest is
the feature extractor and regx owns the head. The first conv is rebuilt for 1-channel
input where needed. `weights` takes torchvision's weight names (e.g. `DEFAULT`), which
need network access the first time.
"""

from __future__ import annotations

import torch
from torch import nn

from regx.errors import ConfigError, DataError
from regx.models.base import Classifier


def _set_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.in_channels != in_channels:
                conv = nn.Conv2d(
                    in_channels,
                    module.out_channels,
                    module.kernel_size,
                    module.stride,
                    module.padding,
                    module.dilation,
                    module.groups,
                    module.bias is not None,
                )
                if module.weight.shape[1] == 3 and in_channels == 1:
                    with torch.no_grad():
                        conv.weight.copy_(module.weight.sum(dim=1, keepdim=True))
                _set_module(model, name, conv)
            return


class TorchvisionModel(Classifier):
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        name: str = "resnet18",
        weights: str | None = None,
    ) -> None:
        import torchvision

        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            raise ConfigError(
                "name",
                name,
                "must be a torchvision classification model, e.g. "
                + ", ".join(sorted(available)[:6])
                + ", … (see torchvision.models.list_models())",
            )
        # ViTs take the input size as a constructor argument; conv nets pool to any size
        kwargs = {"image_size": image_size} if name.startswith("vit") else {}
        try:
            net = torchvision.models.get_model(name, weights=weights, **kwargs)
        except (KeyError, ValueError):
            names = [w.name for w in torchvision.models.get_model_weights(name)]
            raise ConfigError(
                "weights", weights, "must be null, DEFAULT or one of " + ", ".join(names)
            ) from None
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            reason = " ".join(str(e).split())[:160]
            raise DataError(
                f"the {name} weights {weights} could not be downloaded ({reason}): run once "
                f"with network access, put the file in {torch.hub.get_dir()}/checkpoints, "
                "or pass model.weights=null"
            ) from None
        last = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
        if not last:
            raise ConfigError("name", name, "has no final nn.Linear classifier to replace")
        head_name, head = last[-1]
        _set_module(net, head_name, nn.Identity())
        _adapt_first_conv(net, in_channels)
        super().__init__(net, head.in_features, num_classes)
