"""A small CNN for the runtime tests (conv+BN+ReLU, depthwise conv, residual add, pool, linear)
and a quick MNIST training of it."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.fc = nn.Linear(16 * 49, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.pw(self.dw(x)))  # residual add
        x = self.pool(self.down(x))
        return self.fc(torch.flatten(x, 1))


def tiny_cnn() -> nn.Module:
    """Factory for ``runtime_helpers:tiny_cnn`` (random weights, seeded)."""
    torch.manual_seed(0)
    return TinyCNN().eval()


def trained_tiny_cnn(splits, epochs: int = 1, n: int = 2000) -> nn.Module:
    """TinyCNN trained briefly on the first ``n`` training images of ``splits`` (MNIST-5k:
    about 80% test top-1, well above chance)."""
    s = splits
    torch.manual_seed(0)
    m = TinyCNN()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    m.train()
    for _ in range(epochs):
        perm = torch.randperm(min(n, len(s.y_train)))
        for i in range(0, len(perm), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(m(s.x_train[idx]), s.y_train[idx]).backward()
            opt.step()
    return m.eval()
