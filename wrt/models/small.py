"""Small networks for 28×28 inputs (Fashion-MNIST), sized to train on a CPU in minutes."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from wrt.models.base import ImageClassifier


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SmallCNN(ImageClassifier):
    """Four 3×3 conv blocks (32-64-64-128 channels) and a 128-unit hidden layer; ~280k
    parameters. The default model: ≥ 90 % on Fashion-MNIST in minutes on two CPU cores."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, mean=(0.5,), std=(0.5,),
                 width: int = 32, hidden: int = 128):
        super().__init__(mean, std)
        w = width
        self.features = nn.Sequential(OrderedDict(
            conv1=conv_bn_relu(in_channels, w), pool1=nn.MaxPool2d(2),
            conv2=conv_bn_relu(w, 2 * w),
            conv3=conv_bn_relu(2 * w, 2 * w), pool2=nn.MaxPool2d(2),
            conv4=conv_bn_relu(2 * w, 4 * w), pool3=nn.AdaptiveMaxPool2d(3),
            flatten=nn.Flatten(),
            fc1=nn.Linear(4 * w * 9, hidden), relu=nn.ReLU(inplace=True),
        ))
        self.classifier = nn.Linear(hidden, num_classes)


class LeNet(ImageClassifier):
    """LeNet-5-style network: a different small architecture for cross-architecture attacks
    on 28-px data."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, mean=(0.5,), std=(0.5,)):
        super().__init__(mean, std)
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, 6, 5, padding=2), relu1=nn.ReLU(inplace=True),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 16, 5), relu2=nn.ReLU(inplace=True), pool2=nn.AdaptiveMaxPool2d(5),
            flatten=nn.Flatten(),
            fc1=nn.Linear(16 * 25, 120), relu3=nn.ReLU(inplace=True),
            fc2=nn.Linear(120, 84), relu4=nn.ReLU(inplace=True),
        ))
        self.classifier = nn.Linear(84, num_classes)
