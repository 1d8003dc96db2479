"""torchvision's ResNet-50 and DenseNet-121 (randomly initialised: nothing is downloaded)
behind the shared interface; the SoK's ImageNet and cross-architecture models (§VIII-C). torchvision's
models are imported when one is built: importing them costs ~1.7 s (torch._dynamo), in every `wrt-run`."""

from __future__ import annotations

from torch import nn

from wrt.models.base import ImageClassifier


class ResNet50(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
        super().__init__(mean, std)
        from torchvision.models import resnet50

        net = resnet50(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.classifier = nn.Linear(net.fc.in_features, num_classes)
        net.fc = nn.Identity()
        self.features = net


class DenseNet121(ImageClassifier):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
        super().__init__(mean, std)
        from torchvision.models import densenet121

        net = densenet121(weights=None)
        if in_channels != 3:
            net.features.conv0 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.classifier = nn.Linear(net.classifier.in_features, num_classes)
        net.classifier = nn.Identity()
        self.features = net
