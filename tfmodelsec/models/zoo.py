"""Reference architectures (Keras Functional API, softmax outputs, any input shape).

``lenet5`` is the victim of the stealing papers; ``mlp`` the 784-128-10 model of the
input-recovery lab (it takes any input: images are flattened, feature vectors used as
they are); ``c3f2`` and ``small_cnn`` are common victims/students in the
model-stealing literature; ``resnet18`` is the CIFAR-size ResNet (He et al. 2016,
3x3 stem, no max-pool) for larger audits. ``"auto"`` picks ``lenet5`` for images and
``mlp`` for feature vectors (:func:`default_architecture`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

__all__ = ["lenet5", "mlp", "c3f2", "small_cnn", "resnet18", "build_model", "MODELS", "IMAGE_MODELS",
           "default_architecture", "with_input_scaling"]


def _check_shape(input_shape, num_classes):
    shape = tuple(input_shape)
    if not shape or any((not isinstance(d, int)) or d <= 0 for d in shape):
        raise ValueError(
            f"`input_shape` must be a tuple of positive ints. Received: input_shape={input_shape!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    return shape


def _maybe_pool(x, name):
    # Small inputs (e.g. 8x8 digits) would pool down to nothing: pool only while it fits.
    if x.shape[1] >= 2 and x.shape[2] >= 2:
        return layers.MaxPooling2D(2, name=name)(x)
    return x


def lenet5(input_shape=(28, 28, 1), num_classes=10, *, name="lenet5") -> keras.Model:
    """LeNet-5: conv(6, 5x5) - pool - conv(16, 5x5) - pool - 120 - 84 - classes."""
    shape = _check_shape(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="inputs")
    x = layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = _maybe_pool(x, "pool1")
    x = layers.Conv2D(16, 5, padding="valid" if x.shape[1] >= 5 else "same",
                      activation="relu", name="conv2")(x)
    x = _maybe_pool(x, "pool2")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def mlp(input_shape=(28, 28, 1), num_classes=10, *, hidden=128, name="mlp") -> keras.Model:
    """The input-recovery lab's MLP: flatten - Dense(128, relu) - Dense(classes, softmax)."""
    shape = _check_shape(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="inputs")
    x = layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    x = layers.Dense(hidden, activation="relu", name="dense1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def c3f2(input_shape=(28, 28, 1), num_classes=10, *, name="c3f2") -> keras.Model:
    """Three conv blocks (32-64-128) and two dense layers (256, classes)."""
    shape = _check_shape(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="inputs")
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = _maybe_pool(x, f"pool{i}")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def small_cnn(input_shape=(28, 28, 1), num_classes=10, *, name="small_cnn") -> keras.Model:
    """conv32 - conv32 - pool - conv64 - pool - dense128 - classes (with dropout)."""
    shape = _check_shape(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="inputs")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = _maybe_pool(x, "pool1")
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = _maybe_pool(x, "pool2")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.25, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def _basic_block(x, filters, stride, name):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet18(input_shape=(32, 32, 3), num_classes=10, *, width=64, name="resnet18") -> keras.Model:
    """ResNet-18 for CIFAR-size inputs: 3x3 stem, four stages of two basic blocks."""
    shape = _check_shape(input_shape, num_classes)
    inputs = keras.Input(shape=shape, name="inputs")
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, mult in enumerate((1, 2, 4, 8), start=1):
        for block in range(2):
            stride = 2 if (stage > 1 and block == 0 and x.shape[1] >= 2) else 1
            x = _basic_block(x, width * mult, stride, f"stage{stage}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


MODELS: dict[str, Callable[..., keras.Model]] = {
    "lenet5": lenet5,
    "mlp": mlp,
    "mlp_784_128_10": mlp,
    "c3f2": c3f2,
    "small_cnn": small_cnn,
    "resnet18": resnet18,
}


#: Architectures that need image inputs (height, width, channels).
IMAGE_MODELS = ("lenet5", "c3f2", "small_cnn", "resnet18")


def default_architecture(input_shape) -> str:
    """``"lenet5"`` for images of at least 8x8, ``"mlp"`` for anything else (feature vectors, tiny images)."""
    shape = tuple(input_shape)
    return "lenet5" if len(shape) == 3 and min(shape[:2]) >= 8 else "mlp"


def build_model(name: str, input_shape, num_classes: int, *, input_range=(0.0, 1.0), **kwargs) -> keras.Model:
    """Build a zoo model by name (``lenet5``, ``mlp``, ``c3f2``, ``small_cnn``, ``resnet18``, or ``auto``).

    ``input_range``: the range of the data it will take; a bounded range other than ``[0, 1]``
    (e.g. raw 0..255 pixels) puts a ``Rescaling`` onto ``[0, 1]`` in front (no weights, so the
    weight list is the architecture's own); ``None`` (unbounded features) takes them as they are.

    Raises:
        ValueError: an unknown name, or an image architecture for inputs that are not images.
    """
    if name == "auto":
        name = default_architecture(input_shape)
    if name not in MODELS:
        raise ValueError(f"`model` must be one of {sorted(MODELS)} or 'auto'. Received: model={name!r}")
    if name in IMAGE_MODELS and len(tuple(input_shape)) != 3:
        raise ValueError(f"`model` {name!r} takes images (height, width, channels) but the inputs have shape "
                         f"{tuple(input_shape)}: use 'mlp' (or 'auto') for feature vectors")
    model = MODELS[name](tuple(input_shape), num_classes, **kwargs)
    return model if input_range is None else with_input_scaling(model, input_range)


def with_input_scaling(model: keras.Model, input_range, x=None, *, name: str | None = None) -> keras.Model:
    """``model`` behind a layer that maps the victim's input range onto the unit range it trains well on.

    A bounded range other than ``[0, 1]`` gets ``Rescaling`` onto ``[0, 1]``; an unbounded one
    (``None``) gets a ``Normalization`` adapted on ``x`` (the attacker's own data: per-feature
    mean and variance); ``[0, 1]`` (or ``None`` without ``x``) returns ``model`` unchanged. Both
    layers are Keras' own, so the result saves and loads under safe mode.
    """
    import numpy as np

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    if input_range is not None:
        lo, hi = (float(v) for v in input_range)
        if (lo, hi) == (0.0, 1.0):
            return model
        scale = keras.layers.Rescaling(1.0 / (hi - lo), offset=-lo / (hi - lo), name="to_unit_range")
    elif x is None:
        return model
    else:
        scale = keras.layers.Normalization(axis=-1, name="standardise")
        scale.adapt(np.asarray(x, np.float32).reshape(len(x), *shape))
    inputs = keras.Input(shape=shape, name="inputs")
    return keras.Model(inputs, model(scale(inputs)), name=name or model.name)
