"""Architectures, each built by Hydra from `wrt/configs/model/<name>.yaml` (`_target_`).

Every model is an `ImageClassifier`: it takes float images in [0, 1], normalises them itself,
and exposes the same parts (`features`, `classifier`, `forward_features`, `forward_head`,
`reset_classifier`), which fine-tuning, transfer learning and white-box schemes rely on.
"""

from wrt.models.base import ImageClassifier, unwrap
from wrt.models.small import LeNet, SmallCNN
from wrt.models.resnet import ResNet18, WideResNet
from wrt.models.imagenet import DenseNet121, ResNet50

__all__ = ["ImageClassifier", "unwrap", "SmallCNN", "LeNet", "ResNet18", "WideResNet", "ResNet50", "DenseNet121"]
