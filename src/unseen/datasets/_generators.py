"""Small image generators (VAEs, GANs) and the source-attribution CNN, in PyTorch, for the attribution benchmark.

Everything here is seeded and trained for a fixed number of optimisation steps, so a generator's cost does not
depend on the size of its training set. Images are float tensors in [0, 1] of shape (n, 1, 28, 28); samples are
returned as uint8 arrays (n, 28, 28), which is what a downstream attribution model sees.

Architectures (the ``arch`` names used by :mod:`unseen.datasets.attribution`):

``mlp-vae``
    Fully connected VAE, Bernoulli decoder; samples are the decoder means of z ~ N(0, I).
``conv-vae``
    Convolutional VAE whose decoder upsamples with stride-2 transposed convolutions.
``dcgan``
    DCGAN-style GAN: transposed-convolution generator with BatchNorm, tanh output; conv discriminator.
``mlp-gan``
    Fully connected GAN (generator and discriminator are MLPs), tanh output.
``resize-vae``
    Convolutional VAE whose decoder upsamples by nearest-neighbour resizing followed by 3×3 convolutions.

Nothing here imports torch at module import; :func:`torch_module` does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import MissingDependencyError

__all__ = [
    "ARCHS",
    "GeneratorSpec",
    "CNNSpec",
    "torch_module",
    "train_generator",
    "sample_generator",
    "train_attribution_cnn",
    "cnn_features",
    "cnn_head",
    "deterministic",
]

ARCHS = ("mlp-vae", "conv-vae", "dcgan", "mlp-gan", "resize-vae")


def torch_module():
    """Import torch, or say how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "The attribution benchmark trains small PyTorch models. Install PyTorch with: "
            'pip install torch==2.13.0 && pip install "unseen[torch]"'
        ) from exc
    return torch


@contextlib.contextmanager
def deterministic(threads: int | None = None):
    """Deterministic torch algorithms (and ``threads`` intra-op threads, when given) inside the block.

    The previous settings are restored after the block. ``threads=None`` leaves torch's thread count alone.
    """
    torch = torch_module()
    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    was_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)
        if threads is not None:
            torch.set_num_threads(was_threads)


@dataclass(frozen=True)
class GeneratorSpec:
    """Sizes and schedule of one generator (the same for every architecture of a benchmark size)."""

    width: int = 32  # channels of the first conv layer / a quarter of the MLP hidden width
    latent: int = 16  # latent size (VAEs) or noise size (GANs)
    steps: int = 1200  # optimisation steps
    batch: int = 64
    lr_vae: float = 1e-3
    lr_gan: float = 2e-4


@dataclass(frozen=True)
class CNNSpec:
    """The attribution CNN's size and schedule."""

    width: int = 16
    feature_dim: int = 128
    epochs: int = 8
    batch: int = 64
    lr: float = 3e-3


# ---------------------------------------------------------------------------------------------- models


def _build(arch: str, spec: GeneratorSpec) -> tuple[Any, Any]:
    """(generator-or-VAE, discriminator or None) for ``arch``."""
    torch = torch_module()
    nn: Any = torch.nn
    w, z = spec.width, spec.latent
    h = 4 * w  # MLP hidden width

    class MLPVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 2 * h), nn.ReLU(), nn.Linear(2 * h, h), nn.ReLU())
            self.mu, self.logvar = nn.Linear(h, z), nn.Linear(h, z)
            self.dec = nn.Sequential(nn.Linear(z, h), nn.ReLU(), nn.Linear(h, 2 * h), nn.ReLU(), nn.Linear(2 * h, 784))

        def encode(self, x):
            e = self.enc(x)
            return self.mu(e), self.logvar(e)

        def decode_logits(self, code):
            return self.dec(code).view(-1, 1, 28, 28)

    class ConvEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, w, 4, 2, 1),
                nn.LeakyReLU(0.2),  # 14
                nn.Conv2d(w, 2 * w, 4, 2, 1),
                nn.LeakyReLU(0.2),  # 7
                nn.Flatten(),
            )
            self.mu, self.logvar = nn.Linear(2 * w * 49, z), nn.Linear(2 * w * 49, z)

        def forward(self, x):
            e = self.net(x)
            return self.mu(e), self.logvar(e)

    class ConvVAE(nn.Module):
        def __init__(self, resize: bool):
            super().__init__()
            self.encoder = ConvEncoder()
            self.fc = nn.Linear(z, 2 * w * 49)
            if resize:
                up = [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(2 * w, w, 3, 1, 1),
                    nn.ReLU(),
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(w, 1, 3, 1, 1),
                ]
            else:
                up = [nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(w, 1, 4, 2, 1)]
            self.up = nn.Sequential(*up)

        def encode(self, x):
            return self.encoder(x)

        def decode_logits(self, code):
            return self.up(torch.relu(self.fc(code)).view(-1, 2 * w, 7, 7))

    class DCGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(z, 2 * w * 49), nn.BatchNorm1d(2 * w * 49), nn.ReLU())
            self.up = nn.Sequential(
                nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
                nn.BatchNorm2d(w),
                nn.ReLU(),
                nn.ConvTranspose2d(w, 1, 4, 2, 1),
                nn.Tanh(),
            )

        def forward(self, code):
            return self.up(self.fc(code).view(-1, 2 * w, 7, 7))

    class DCDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, w, 4, 2, 1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(w, 2 * w, 4, 2, 1),
                nn.BatchNorm2d(2 * w),
                nn.LeakyReLU(0.2),
                nn.Flatten(),
                nn.Linear(2 * w * 49, 1),
            )

        def forward(self, x):
            return self.net(x)

    class MLPGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(z, h),
                nn.LeakyReLU(0.2),
                nn.Linear(h, 2 * h),
                nn.LeakyReLU(0.2),
                nn.Linear(2 * h, 784),
                nn.Tanh(),
            )

        def forward(self, code):
            return self.net(code).view(-1, 1, 28, 28)

    class MLPDiscriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(784, 2 * h),
                nn.LeakyReLU(0.2),
                nn.Linear(2 * h, h),
                nn.LeakyReLU(0.2),
                nn.Linear(h, 1),
            )

        def forward(self, x):
            return self.net(x)

    if arch == "mlp-vae":
        return MLPVAE(), None
    if arch == "conv-vae":
        return ConvVAE(resize=False), None
    if arch == "resize-vae":
        return ConvVAE(resize=True), None
    if arch == "dcgan":
        return DCGenerator(), DCDiscriminator()
    if arch == "mlp-gan":
        return MLPGenerator(), MLPDiscriminator()
    raise ValueError(f"unknown generator architecture {arch!r}; expected one of {ARCHS}")


def _is_vae(arch: str) -> bool:
    return arch.endswith("vae")


# ---------------------------------------------------------------------------------------------- training


def train_generator(
    arch: str,
    images: np.ndarray,
    seed: int,
    spec: GeneratorSpec,
    *,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "",
) -> Any:
    """Train one generator on ``images`` (uint8 (n, 28, 28)) for ``spec.steps`` steps; returns the model.

    The returned object is the VAE (for VAEs) or the generator network (for GANs), in eval mode on ``device``.
    """
    torch = torch_module()
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model, disc = _build(arch, spec)
    model.to(device)
    data = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1).to(device)
    batches = torch.Generator().manual_seed(seed + 1)
    bar = tqdm(range(spec.steps), desc=desc or arch, unit="step", disable=not progress, leave=False)
    if _is_vae(arch):
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr_vae)
        model.train()
        for _ in bar:
            x = data[torch.randint(len(data), (spec.batch,), generator=batches).to(device)]
            mu, logvar = model.encode(x)
            eps = torch.randn(mu.shape, generator=batches).to(device)
            logits = model.decode_logits(mu + eps * torch.exp(0.5 * logvar))
            rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (rec + kl) / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        disc.to(device)
        opt_g = torch.optim.Adam(model.parameters(), lr=spec.lr_gan, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(disc.parameters(), lr=spec.lr_gan, betas=(0.5, 0.999))
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        model.train()
        disc.train()
        ones = torch.ones(spec.batch, 1, device=device)
        zeros = torch.zeros(spec.batch, 1, device=device)
        for _ in bar:
            real = data[torch.randint(len(data), (spec.batch,), generator=batches).to(device)] * 2 - 1
            code = torch.randn(spec.batch, spec.latent, generator=batches).to(device)
            fake = model(code)
            loss_d = bce(disc(real), ones) + bce(disc(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = bce(disc(fake), ones)  # non-saturating generator loss
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
    model.eval()
    return model


def sample_generator(
    model: Any, arch: str, n: int, seed: int, spec: GeneratorSpec, *, device: str = "cpu"
) -> np.ndarray:
    """``n`` samples of a trained generator as uint8 (n, 28, 28); seeded."""
    torch = torch_module()
    g = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, n, 500):
            code = torch.randn(min(500, n - start), spec.latent, generator=g).to(device)
            if _is_vae(arch):
                x = torch.sigmoid(model.decode_logits(code))
            else:
                x = (model(code) + 1) / 2
            out.append(x.squeeze(1).clamp(0, 1).cpu().numpy())
    return np.round(np.concatenate(out) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- attribution CNN


def _attribution_net(n_classes: int, spec: CNNSpec) -> Any:
    torch = torch_module()
    nn: Any = torch.nn
    w = spec.width

    class AttributionCNN(nn.Module):
        # Two conv blocks, then a fully connected layer over the 7×7 map: no global pooling, because many traces
        # sit at fixed pixel positions (an MLP decoder's output biases, a 7×7 seed map's upsampling pattern).
        # No input normalisation beyond centring: the traces are in the exact pixel values.
        def __init__(self):
            super().__init__()

            def conv(c_in, c_out):
                return [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()]

            self.body = nn.Sequential(
                *conv(1, w),
                *conv(w, w),
                nn.MaxPool2d(2),  # 14×14
                *conv(w, 2 * w),
                *conv(2 * w, 2 * w),
                nn.MaxPool2d(2),  # 7×7
                nn.Flatten(),
                nn.Linear(2 * w * 49, spec.feature_dim),
                nn.ReLU(),
            )
            self.head = nn.Linear(spec.feature_dim, n_classes)

        def features(self, x):
            return self.body(x)

        def forward(self, x):
            return self.head(self.body(x))

    return AttributionCNN()


def _to_input(images: np.ndarray, torch: Any, device: str) -> Any:
    return (torch.from_numpy(images.astype(np.float32) / 255.0 - 0.5)).unsqueeze(1).to(device)


def train_attribution_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    seed: int,
    spec: CNNSpec,
    *,
    device: str = "cpu",
    progress: bool = False,
) -> Any:
    """Train the attribution CNN on uint8 images (n, 28, 28) with source labels; returns the model in eval mode."""
    torch = torch_module()
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    net = _attribution_net(n_classes, spec).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    n = len(images)
    steps_per_epoch = int(np.ceil(n / spec.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch)
    x_all = _to_input(images, torch, device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    order = torch.Generator().manual_seed(seed + 1)
    net.train()
    bar = tqdm(
        total=spec.epochs * steps_per_epoch, desc="attribution CNN", unit="step", disable=not progress, leave=False
    )
    for _ in range(spec.epochs):
        perm = torch.randperm(n, generator=order).to(device)
        for start in range(0, n, spec.batch):
            idx = perm[start : start + spec.batch]
            loss = torch.nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    bar.close()
    net.eval()
    return net


def cnn_features(net: Any, images: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """Penultimate-layer features (n, feature_dim) float32 of uint8 images (n, 28, 28)."""
    torch = torch_module()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            out.append(net.features(_to_input(images[start : start + 1000], torch, device)).cpu().numpy())
    if not out:
        return np.zeros((0, net.head.in_features), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def cnn_head(net: Any) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's last linear layer as float64 arrays ``(W (C, d), b (C,))``."""
    return (
        net.head.weight.detach().cpu().numpy().astype(np.float64),
        net.head.bias.detach().cpu().numpy().astype(np.float64),
    )
