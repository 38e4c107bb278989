"""The model zoo: one registry of name -> constructor.

Every constructor takes ``num_classes``, ``in_channels`` and ``image_size`` (the
dataset reports the last two), plus its own keyword arguments, and returns a
plain ``nn.Module``. Nothing about curves lives here: ``curves/`` works with any
module. To add a model, decorate its constructor with ``@register`` in a module
imported below.
"""
from models.registry import (MODELS, TRANSFORMS, build_model, default_transform,  # noqa: F401
                             model_from_checkpoint, register)
from models import small, vgg, preresnet, resnet, wide_resnet  # noqa: F401,E402  (they register themselves)

__all__ = ["MODELS", "TRANSFORMS", "build_model", "default_transform", "model_from_checkpoint", "register"]
