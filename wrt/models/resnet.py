"""CIFAR-style residual networks: ResNet-18 (He et al. 2016) and Wide ResNet 28-10
(Zagoruyko & Komodakis 2016), the SoK's CIFAR-10 architecture (§VIII-C)."""

from __future__ import annotations

from torch import nn

from wrt.models.base import ImageClassifier


class BasicBlock(nn.Module):
    """Post-activation residual block (ResNet-18)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class WideBlock(nn.Module):
    """Pre-activation wide residual block with dropout (WRN)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.dropout(self.conv1(self.relu(self.bn1(x))))
        return self.conv2(self.relu(self.bn2(out))) + self.shortcut(x)


class ResNet18(ImageClassifier):
    """ResNet-18 with a 3×3 stem for 32-px images; `width` is the first stage's channels (64 in
    He et al.; the stages have width, 2·width, 4·width, 8·width)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, mean=(0.5,) * 3, std=(0.25,) * 3,
                 width: int = 64):
        super().__init__(mean, std)
        w = width
        layers = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        cin = w
        for cout, stride in [(w, 1), (w, 1), (2 * w, 2), (2 * w, 1), (4 * w, 2), (4 * w, 1), (8 * w, 2), (8 * w, 1)]:
            layers.append(BasicBlock(cin, cout, stride))
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(8 * w, num_classes)


class WideResNet(ImageClassifier):
    """WRN-depth-width (28-10 in the SoK) for 32-px images."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 28, width: int = 10,
                 dropout: float = 0.3, mean=(0.5,) * 3, std=(0.25,) * 3):
        super().__init__(mean, std)
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        layers = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        cin = widths[0]
        for stage, cout in enumerate(widths[1:]):
            for i in range(n):
                layers.append(WideBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1, dropout))
                cin = cout
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)
