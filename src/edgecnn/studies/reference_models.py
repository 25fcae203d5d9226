"""Architectures that published benchmarks ran and torchvision does not have.

``references.toml`` names them as ``edgecnn.studies.reference_models:<function>``; each
function returns a randomly initialised ``torch.nn.Module`` (cost analysis needs no
weights) and its docstring says which published definition it follows.
"""

from __future__ import annotations

from edgecnn.errors import ConfigError


def mobilenet_v1(width: float = 1.0, num_classes: int = 1000):
    """MobileNet v1 (Howard et al., 2017, Table 1): 3x3 stem, 13 depthwise-separable blocks."""
    from torch import nn

    def c(ch: int) -> int:
        return max(8, int(ch * width))

    def block(cin: int, cout: int, stride: int, groups: int, k: int) -> list:
        pad = k // 2
        conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    cfg += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    layers = block(3, c(32), 2, 1, 3)
    cin = c(32)
    for cout, stride in cfg:
        layers += block(cin, cin, stride, cin, 3) + block(cin, c(cout), 1, 1, 1)
        cin = c(cout)
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
    )


def alexnet_original(num_classes: int = 1000):
    """AlexNet as in Krizhevsky et al. (2012) and Eyeriss's papers: 227x227 input, 96-256-384-
    384-256 filters, two groups in CONV2/4/5 (666 M conv MACs per image)."""
    from torch import nn

    relu = nn.ReLU
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, 4),
        relu(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, 1, 2, groups=2),
        relu(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, 1, 1),
        relu(),
        nn.Conv2d(384, 384, 3, 1, 1, groups=2),
        relu(),
        nn.Conv2d(384, 256, 3, 1, 1, groups=2),
        relu(),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096),
        relu(),
        nn.Linear(4096, 4096),
        relu(),
        nn.Linear(4096, num_classes),
    )


def alexnet_caffe(num_classes: int = 1000):
    """The Caffe AlexNet (BVLC reference, as in ncnn's benchmark ``alexnet.param``):
    :func:`alexnet_original` with its two local response normalisations (size 5, alpha 1e-4,
    beta 0.75, k 1) after the first two ReLUs, before the pools."""
    from torch import nn

    layers = list(alexnet_original(num_classes))
    for i in (5, 2):  # after relu1 and relu2 (indices before insertion, back to front)
        layers.insert(i, nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0))
    return nn.Sequential(*layers)


def resnet50_v1(num_classes: int = 1000):
    """ResNet-50 as He et al. (2016) released it (Caffe; ncnn's benchmark ``resnet50.param``):
    a stage's first bottleneck strides in its 1x1 reduction (``branch2a``), not in the 3x3 as
    torchvision's v1.5 does, so every 3x3 convolution is stride 1 (4.1 G MACs either way up to
    the 3x3s' share)."""
    from torchvision.models import resnet50

    model = resnet50(num_classes=num_classes)
    for stage in (model.layer2, model.layer3, model.layer4):
        first = stage[0]
        stride = first.conv2.stride
        first.conv1.stride, first.conv2.stride = stride, (1, 1)
    return model


def resnet_v2(depth: int = 50, num_classes: int = 1000):
    """Pre-activation ResNet V2 (He et al., 2016, "Identity mappings") as Keras's
    ``ResNet50V2`` / ``ResNet152V2`` define it: BatchNorm + ReLU before each bottleneck
    (not foldable into the conv before it), a stage downsamples in its *last* block's 3x3 conv
    (stages 2-4; the shortcut is a 1x1 max-pool there), a 1x1 projection shortcut in each
    stage's first block, and BatchNorm + ReLU after the last stage. ``depth``: 50, 101 or 152."""
    from torch import nn

    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
    if depth not in blocks:
        raise ConfigError(f"resnet_v2 depth must be one of {sorted(blocks)}, got {depth}")

    class Block(nn.Module):
        def __init__(self, cin: int, width: int, stride: int, project: bool) -> None:
            super().__init__()
            cout = 4 * width
            self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
            if project:
                self.shortcut: nn.Module = nn.Conv2d(cin, cout, 1, stride)
            elif stride > 1:
                self.shortcut = nn.MaxPool2d(1, stride)
            else:
                self.shortcut = nn.Identity()
            self.project = project
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, cout, 1),
            )

        def forward(self, x):  # noqa: ANN001, ANN201
            pre = self.pre(x)
            return self.shortcut(pre if self.project else x) + self.body(pre)

    layers: list = [nn.Conv2d(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), blocks[depth], strict=True)):
        for i in range(n):
            stride = 2 if (i == n - 1 and stage < 3) else 1
            layers.append(Block(cin, width, stride, project=(i == 0)))
            cin = 4 * width
    layers += [
        nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(cin, num_classes),
    ]
    return nn.Sequential(*layers)


def resnet152_v2(num_classes: int = 1000):
    """:func:`resnet_v2` at depth 152 (Keras ``ResNet152V2``)."""
    return resnet_v2(152, num_classes)


def _conv_bn(cin: int, cout: int, k, stride: int = 1, same: bool = True):  # noqa: ANN001
    """Conv (no bias) + BatchNorm + ReLU as TF-slim's and Keras's ``conv2d_bn``: ``k`` an int
    or ``(kh, kw)``; ``same`` pads to keep the size at stride 1, else no padding (VALID)."""
    from torch import nn

    kh, kw = (k, k) if isinstance(k, int) else k
    pad = (kh // 2, kw // 2) if same else (0, 0)
    return nn.Sequential(
        nn.Conv2d(cin, cout, (kh, kw), stride, pad, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


def _branches(*branches):  # noqa: ANN002, ANN202
    """A module concatenating its branches' outputs along the channels."""
    import torch
    from torch import nn

    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):  # noqa: ANN001, ANN202
            return torch.cat([b(x) for b in self.branches], 1)

    return Branches()


def inception_v4(num_classes: int = 1001):
    """Inception-v4 (Szegedy et al., 2017, Figs. 3-9) as TF-slim's ``inception_v4`` builds it
    (Coral's Edge TPU benchmark model, 299x299): stem with two VALID-padded reductions to 35x35,
    4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B, 3 Inception-C (8x8x1536), global
    average pool, 1001-way classifier; 42.7 M parameters, 12.3 G MACs at 299x299."""
    from torch import nn

    c = _conv_bn

    def seq(*m):  # noqa: ANN002, ANN202
        return nn.Sequential(*m)

    def pool3(avg: bool = False):  # noqa: ANN202
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False) if avg else nn.MaxPool2d(3, 2)

    def block_a() -> nn.Module:
        return _branches(
            c(384, 96, 1),
            seq(c(384, 64, 1), c(64, 96, 3)),
            seq(c(384, 64, 1), c(64, 96, 3), c(96, 96, 3)),
            seq(pool3(avg=True), c(384, 96, 1)),
        )

    def block_b() -> nn.Module:
        return _branches(
            c(1024, 384, 1),
            seq(c(1024, 192, 1), c(192, 224, (1, 7)), c(224, 256, (7, 1))),
            seq(
                c(1024, 192, 1),
                c(192, 192, (7, 1)),
                c(192, 224, (1, 7)),
                c(224, 224, (7, 1)),
                c(224, 256, (1, 7)),
            ),
            seq(pool3(avg=True), c(1024, 128, 1)),
        )

    def block_c() -> nn.Module:
        return _branches(
            c(1536, 256, 1),
            seq(c(1536, 384, 1), _branches(c(384, 256, (1, 3)), c(384, 256, (3, 1)))),
            seq(
                c(1536, 384, 1),
                c(384, 448, (3, 1)),
                c(448, 512, (1, 3)),
                _branches(c(512, 256, (1, 3)), c(512, 256, (3, 1))),
            ),
            seq(pool3(avg=True), c(1536, 256, 1)),
        )

    layers = [
        c(3, 32, 3, 2, same=False),
        c(32, 32, 3, same=False),
        c(32, 64, 3),
        _branches(pool3(), c(64, 96, 3, 2, same=False)),
        _branches(
            seq(c(160, 64, 1), c(64, 96, 3, same=False)),
            seq(c(160, 64, 1), c(64, 64, (1, 7)), c(64, 64, (7, 1)), c(64, 96, 3, same=False)),
        ),
        _branches(c(192, 192, 3, 2, same=False), pool3()),
        *[block_a() for _ in range(4)],
        _branches(
            c(384, 384, 3, 2, same=False),
            seq(c(384, 192, 1), c(192, 224, 3), c(224, 256, 3, 2, same=False)),
            pool3(),
        ),
        *[block_b() for _ in range(7)],
        _branches(
            seq(c(1024, 192, 1), c(192, 192, 3, 2, same=False)),
            seq(
                c(1024, 256, 1),
                c(256, 256, (1, 7)),
                c(256, 320, (7, 1)),
                c(320, 320, 3, 2, same=False),
            ),
            pool3(),
        ),
        *[block_c() for _ in range(3)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1536, num_classes),
    ]
    return nn.Sequential(*layers)


def inception_resnet_v2(num_classes: int = 1000):
    """Inception-ResNet-v2 (Szegedy et al., 2017) as Keras's ``InceptionResNetV2`` defines it
    (Coral's Edge TPU benchmark model, 299x299): stem to 35x35x320 (``mixed_5b``), 10 block35
    (residual scale 0.17), ``mixed_6a``, 20 block17 (0.1), ``mixed_7a``, 10 block8 (0.2; the
    last without ReLU), a 1x1 conv to 1536, global average pool and a 1000-way classifier. Each
    block's branches are concatenated and projected by a 1x1 conv with bias (no BatchNorm) that
    is scaled and added to the block input. 55.87 M parameters in Keras's count (BatchNorm
    without scale: beta, moving mean and variance)."""
    from torch import nn

    c = _conv_bn

    def seq(*m):  # noqa: ANN002, ANN202
        return nn.Sequential(*m)

    class Residual(nn.Module):
        def __init__(self, cin: int, branches: nn.Module, width: int, scale: float, relu=True):  # noqa: ANN001
            super().__init__()
            self.branches = branches
            self.up = nn.Conv2d(width, cin, 1)
            self.scale = scale
            self.relu = nn.ReLU() if relu else nn.Identity()

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.relu(x + self.scale * self.up(self.branches(x)))

    def block35() -> nn.Module:
        return Residual(
            320,
            _branches(
                c(320, 32, 1),
                seq(c(320, 32, 1), c(32, 32, 3)),
                seq(c(320, 32, 1), c(32, 48, 3), c(48, 64, 3)),
            ),
            128,
            0.17,
        )

    def factorised(cin: int, mid: int, w1: int, w2: int, k: int, scale: float, relu=True):  # noqa: ANN001, ANN202
        """block17 / block8: a 1x1 branch of 192 beside 1x1 -> 1xk -> kx1; 192 + w2 wide."""
        branches = _branches(
            c(cin, 192, 1), seq(c(cin, mid, 1), c(mid, w1, (1, k)), c(w1, w2, (k, 1)))
        )
        return Residual(cin, branches, 192 + w2, scale, relu)

    def block17() -> nn.Module:
        return factorised(1088, 128, 160, 192, 7, 0.1)

    def block8(relu: bool = True) -> nn.Module:
        return factorised(2080, 192, 224, 256, 3, 0.2, relu)

    layers = [
        c(3, 32, 3, 2, same=False),
        c(32, 32, 3, same=False),
        c(32, 64, 3),
        nn.MaxPool2d(3, 2),
        c(64, 80, 1, same=False),
        c(80, 192, 3, same=False),
        nn.MaxPool2d(3, 2),
        _branches(
            c(192, 96, 1),
            seq(c(192, 48, 1), c(48, 64, 5)),
            seq(c(192, 64, 1), c(64, 96, 3), c(96, 96, 3)),
            seq(nn.AvgPool2d(3, 1, 1, count_include_pad=False), c(192, 64, 1)),
        ),
        *[block35() for _ in range(10)],
        _branches(
            c(320, 384, 3, 2, same=False),
            seq(c(320, 256, 1), c(256, 256, 3), c(256, 384, 3, 2, same=False)),
            nn.MaxPool2d(3, 2),
        ),
        *[block17() for _ in range(20)],
        _branches(
            seq(c(1088, 256, 1), c(256, 384, 3, 2, same=False)),
            seq(c(1088, 256, 1), c(256, 288, 3, 2, same=False)),
            seq(c(1088, 256, 1), c(256, 288, 3), c(288, 320, 3, 2, same=False)),
            nn.MaxPool2d(3, 2),
        ),
        *[block8() for _ in range(9)],
        block8(relu=False),
        c(2080, 1536, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1536, num_classes),
    ]
    return nn.Sequential(*layers)
