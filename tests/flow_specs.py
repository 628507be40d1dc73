"""Specs of modules and run orders, shared by test_shapes_flows.py (which holds each against torch) and
test_fuzz.py (which mutates them); and the helpers that compare a compiled module with a network written
directly in torch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

# ---- comparing a compiled module with a reference written in torch ------------------------------------------


def randomized(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every floating-point parameter and buffer drawn at random (running variances positive), so that a comparison
    of outputs compares the weights' places too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                low = 0.5 if name.endswith("running_var") else -1.0
                t.copy_(torch.rand(t.shape, generator=g) * (1.5 - low) + low)
    return module


def same_outputs(compiled, reference: nn.Module, *, train: bool = True) -> None:
    """`reference` (built with torch directly) loads the compiled module's weights strictly and computes the same."""
    module = randomized(compiled.module)
    reference.load_state_dict(module.state_dict(), strict=True)
    x = torch.randn(2, *compiled.shapes.input, generator=torch.Generator().manual_seed(1))
    for mode in (False, True) if train else (False,):
        torch.manual_seed(0)
        got = module.train(mode)(x.clone())
        torch.manual_seed(0)
        want = reference.train(mode)(x.clone())
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=f"train={mode}")


class Net(nn.Module):
    """A reference network: named children (and parameters), and a forward given as a function of (self, x)."""

    def __init__(self, forward: Callable[..., torch.Tensor], **children: nn.Module | nn.Parameter):
        super().__init__()
        self._fn = forward
        for name, child in children.items():
            setattr(self, name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(self, x)


def seq(**children: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(children))


# ---- torchvision's building blocks, as specs ------------------------------------------------------------------

FIRE = """
module Fire(squeeze_planes, expand1x1_planes, expand3x3_planes) {
    squeeze               Conv2d(squeeze_planes, kernel_size=1)
    squeeze_activation    ReLU(inplace=true)
    expand1x1             Conv2d(expand1x1_planes, kernel_size=1)
    expand1x1_activation  ReLU(inplace=true)
    expand3x3             Conv2d(expand3x3_planes, kernel_size=3, padding=1)
    expand3x3_activation  ReLU(inplace=true)
    forward(x) {
        x = squeeze_activation(squeeze(x))
        return cat(expand1x1_activation(expand1x1(x)), expand3x3_activation(expand3x3(x)))
    }
}
"""

# ResNet's BasicBlock: a downsample only where the stride or the width changes, decided from the input's shape
BASIC_BLOCK = """
module BasicBlock(planes, stride=1) {
    conv1 Conv2d(planes, kernel_size=3, stride=stride, padding=1, bias=false)
    bn1   BatchNorm2d()
    relu  ReLU(inplace=true)
    conv2 Conv2d(planes, kernel_size=3, padding=1, bias=false)
    bn2   BatchNorm2d()
    project = stride != 1 or in_channels != planes
    if project {
        downsample Sequential {
            Conv2d(planes, kernel_size=1, stride=stride, bias=false)
            BatchNorm2d()
        }
    }
    forward(x) {
        out = relu(bn1(conv1(x)))
        out = bn2(conv2(out))
        if project {
            return relu(out + downsample(x))
        }
        return relu(out + x)
    }
}
"""

# MobileNetV2's block: Conv2dNormActivation is a module without a forward (its children 0, 1, 2 run in order)
INVERTED_RESIDUAL = """
module Conv2dNormActivation(out_channels, kernel_size=3, stride=1, groups=1) {
    Conv2d(out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=false)
    BatchNorm2d()
    ReLU6(inplace=true)
}
module InvertedResidual(oup, stride, expand_ratio) {
    hidden = round(in_channels * expand_ratio)
    conv Sequential {
        if expand_ratio != 1 {
            Conv2dNormActivation(hidden, kernel_size=1)
        }
        Conv2dNormActivation(hidden, stride=stride, groups=hidden)
        Conv2d(oup, 1, 1, 0, bias=false)
        BatchNorm2d()
    }
    forward(x) {
        if stride == 1 and in_channels == oup {
            return x + conv(x)
        }
        return conv(x)
    }
}
"""

SQUEEZE_EXCITATION = """
module SqueezeExcitation(squeeze_channels) {
    avgpool           AdaptiveAvgPool2d(1)
    fc1               Conv2d(squeeze_channels, 1)
    fc2               Conv2d(in_channels, 1)
    activation        ReLU()
    scale_activation  Hardsigmoid()
    forward(x) {
        scale = scale_activation(fc2(activation(fc1(avgpool(x)))))
        return scale * x
    }
}
"""

# ConvNeXt's block: LayerNorm and Linear over a channels-last image, a learned layer scale, stochastic depth
CN_BLOCK = """
module CNBlock(scale, sd_prob) {
    dim = in_channels
    block Sequential {
        Conv2d(dim, kernel_size=7, padding=3, groups=dim)
        Permute((0, 2, 3, 1))
        LayerNorm(eps=1e-6)
        Linear(4 * dim)
        GELU()
        Linear(dim)
        Permute((0, 3, 1, 2))
    }
    layer_scale       Parameter((dim, 1, 1), value=scale)
    stochastic_depth  StochasticDepth(sd_prob, 'row')
    forward(x) {
        return stochastic_depth(layer_scale * block(x)) + x
    }
}
"""

# DenseNet: a layer without forward, and a block that concatenates each layer's output to its input
DENSE_BLOCK = """
module DenseLayer(growth_rate, bn_size) {
    norm1 BatchNorm2d()
    relu1 ReLU(inplace=true)
    conv1 Conv2d(bn_size * growth_rate, kernel_size=1, bias=false)
    norm2 BatchNorm2d()
    relu2 ReLU(inplace=true)
    conv2 Conv2d(growth_rate, kernel_size=3, padding=1, bias=false)
}
module DenseBlock(num_layers, growth_rate, bn_size) {
    repeat i in 1..num_layers {
        denselayer{i} DenseLayer(growth_rate, bn_size)
    }
    forward(x) {
        repeat i in 1..num_layers {
            x = cat(x, denselayer{i}(x))
        }
        return x
    }
}
"""

# ShuffleNetV2's unit: chunk, cat and channel_shuffle, two structures by the stride
SHUFFLE_UNIT = """
module ShuffleUnit(oup, stride) {
    bf = oup // 2
    if stride > 1 {
        branch1 Sequential {
            Conv2d(in_channels, 3, stride, 1, groups=in_channels, bias=false)
            BatchNorm2d()
            Conv2d(bf, 1, 1, 0, bias=false)
            BatchNorm2d()
            ReLU(inplace=true)
        }
    }
    branch2 Sequential {
        Conv2d(bf, 1, 1, 0, bias=false)
        BatchNorm2d()
        ReLU(inplace=true)
        Conv2d(bf, 3, stride, 1, groups=bf, bias=false)
        BatchNorm2d()
        Conv2d(bf, 1, 1, 0, bias=false)
        BatchNorm2d()
        ReLU(inplace=true)
    }
    forward(x) {
        if stride == 1 {
            x1, x2 = chunk(x, 2)
            out = cat(x1, branch2(x2))
        } else {
            out = cat(branch1(x), branch2(x))
        }
        return channel_shuffle(out, 2)
    }
}
"""

# Inception v3's InceptionA: four branches of modules with a forward, one of them a functional avg_pool2d
INCEPTION_A = """
module BasicConv2d(out_channels, kernel_size, padding=0) {
    conv Conv2d(out_channels, kernel_size, padding=padding, bias=false)
    bn   BatchNorm2d(eps=0.001)
    forward(x) {
        return relu(bn(conv(x)))
    }
}
module InceptionA(pool_features) {
    branch1x1       BasicConv2d(64, 1)
    branch5x5_1     BasicConv2d(48, 1)
    branch5x5_2     BasicConv2d(64, 5, padding=2)
    branch3x3dbl_1  BasicConv2d(64, 1)
    branch3x3dbl_2  BasicConv2d(96, 3, padding=1)
    branch3x3dbl_3  BasicConv2d(96, 3, padding=1)
    branch_pool     BasicConv2d(pool_features, 1)
    forward(x) {
        b1 = branch1x1(x)
        b5 = branch5x5_2(branch5x5_1(x))
        b3 = branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x)))
        bp = branch_pool(avg_pool2d(x, 3, stride=1, padding=1))
        return cat(b1, b5, b3, bp)
    }
}
"""


BLOCK_SPECS: dict[str, str] = {
    "fire": "input 8x6x5\n" + FIRE + "layers { fire2 Fire(4, 8, 8)  fire3 Fire(6, 12, 4) }\n",
    "basic-blocks": "input 4x7x7\n" + BASIC_BLOCK + "layers { layer1 Sequential { BasicBlock(8, 2) BasicBlock(8) } }\n",
    "inverted-residuals": "input 4x7x6\n"
    + INVERTED_RESIDUAL
    + "layers { features Sequential { InvertedResidual(8, 2, 6) InvertedResidual(8, 1, 1) } }\n",
    "squeeze-excitation": "input 3x5x4\n"
    + SQUEEZE_EXCITATION
    + "layers { conv Conv2d(8, 3, padding=1)  se SqueezeExcitation(4) }\n",
    "cn-blocks": "input 8x5x6\n" + CN_BLOCK + "layers { stage Sequential { CNBlock(0.5, 0.0) CNBlock(1e-6, 0.25) } }\n",
    "dense-block": "input 5x4x4\n" + DENSE_BLOCK + "layers { denseblock1 DenseBlock(3, 4, 2) }\n",
    "shuffle-units": "input 6x6x6\n" + SHUFFLE_UNIT + "layers { down ShuffleUnit(8, 2)  unit ShuffleUnit(8, 1) }\n",
    "inception-a": "input 8x5x5\n" + INCEPTION_A + "layers { Mixed_5b InceptionA(4) }\n",
}

# every operation of a forward (lang.ops), with the references in test_shapes_flows.py
OP_SPECS: dict[str, str] = {
    "pooling": """input 3x9x9
layers { conv Conv2d(8, 3, padding=1)  fc Linear(5) }
forward(x) {
    y = max_pool2d(conv(x), 3, stride=2, padding=1, ceil_mode=true)
    y = avg_pool2d(y, 2, ceil_mode=true, count_include_pad=false)
    z = mean(y, (2, 3), keepdim=true)
    return softmax(fc(flatten(adaptive_avg_pool2d(y, (2, 1)) * z, 1)), 1)
}
""",
    "activations": """input 4x3x3
layers { conv Conv2d(4, 1) }
forward(x) {
    y = conv(x)
    a = relu(y) + relu6(y + y) + silu(y) + sigmoid(y) + tanh(y) + hardswish(y) + hardsigmoid(y)
    b = gelu(y) + gelu(y, 'tanh') + mish(y) + elu(y) + leaky_relu(y, 0.2) + leaky_relu(y)
    return a * b
}
""",
    "dimensions": """input 4x3x5
layers { l Linear(6)  l2 Linear(6) }
forward(x) {
    a = mean(x, -1)
    b = flatten(x, 2)
    c = cat(a, b, dim=-1)
    return cat(l(c), l2(flatten(cat(x, x, dim=2), 2)), dim=2)
}
""",
    "layer-norms": """input 8x4x5
layers {
    w Parameter((5,), value=1.5)
    b Parameter((5,), value=0.25)
    conv Conv2d(5, 1)
}
forward(x) {
    a, c = split(x, (3, 5))
    y = permute(conv(c), (0, 2, 3, 1))
    y = layer_norm(y, (5,), weight=w, bias=b, eps=1e-6)
    z = layer_norm(a, (4, 5))
    return cat(z, permute(y, (0, 3, 1, 2)))
}
""",
    "dropouts": """input 4x3x3
layers { conv Conv2d(4, 1) }
forward(x) {
    y = dropout(conv(x), 0.2)
    return x + stochastic_depth(y, 0.3, 'batch') + stochastic_depth(y, 0.5, 'row')
}
""",
    "broadcasting": """input 4x5x6
layers {
    gamma Parameter((4, 1, 1), value=0.5)
    conv  Conv2d(4, 3, padding=1)
}
forward(x) {
    y = conv(x)
    s = sigmoid(mean(y, 1, keepdim=true))
    c = mean(y, (2, 3), keepdim=true)
    return add(x, gamma * (y * s)) + mul(c, x)
}
""",
    "kept-heads": """input 3x8x8
module Aux(classes) {
    conv Conv2d(4, 1)
    fc   Linear(classes)
    forward(x) { return fc(flatten(adaptive_avg_pool2d(relu(conv(x)), (2, 2)), 1)) }
}
module Stage() {
    conv Conv2d(8, 3, padding=1)
    kept 8x8x8 aux Aux(10)
    forward(x) { return relu(conv(x)) }
}
module Head() {
    Flatten()
    kept 8x2x2 extra Sequential { Flatten() Linear(3) }
    Linear(10)
}
layers {
    stage Stage()
    kept 8x4x4 aux2 Aux(10)
    pool  MaxPool2d(2)
    head  Head()
}
forward(x) { return head(pool(stage(x))) }
""",
    "if-on-a-constant": """input 4x6x6
residual = true
layers { conv Conv2d(4, 3, padding=1) }
forward(x) {
    if residual and 2 * 2 == 4 {
        return x + conv(x)
    } else {
        return conv(x)
    }
}
""",
}
