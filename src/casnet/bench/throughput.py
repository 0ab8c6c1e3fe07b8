"""How fast the networks train and predict on this machine (``casnet benchmark train``).

Throughput is measured on random 60x60 stamps held in memory (the content does not change the
arithmetic), after one untimed warm-up epoch that pays graph tracing and memory allocation. Only
Keras is used, so the same figures can be taken under any Keras 3 backend (TensorFlow here; JAX
or PyTorch on a GPU machine without TensorFlow: ``KERAS_BACKEND=jax``). The
arithmetic per image is counted analytically from the architecture, so the achieved GFLOP/s can
be set against a matrix multiplication timed in the same process.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from casnet.networks.settings import ArchitectureConfig, ModelConfig, SearchConfig

__all__ = [
    "PAPER_TRAINING_IMAGES",
    "accelerators",
    "benchmark_train",
    "format_train_report",
    "forward_flops",
    "keras_flops",
    "matmul_gflops",
    "network_rate",
    "predict_throughput",
    "train_throughput",
]

#: training images of the paper after augmentation (Tohill et al. 2021 Sec. 3.2)
PAPER_TRAINING_IMAGES = 141_453


def forward_flops(arch: ArchitectureConfig, input_size: int = 60) -> int:
    """Floating-point operations of one forward pass for one image (multiply + add = 2).

    Convolutions and dense layers only (pooling, normalisation and activations are < 1%).
    """
    flops, size, channels = 0, input_size, 1
    for b in range(arch.blocks):
        filters = arch.filters * 2**b
        for _ in range(arch.conv_per_block):
            size -= 2  # 3x3 'valid'
            flops += 2 * 9 * channels * filters * size * size
            channels = filters
        size //= 2
    features = size * size * channels
    for _ in range(arch.dense_layers):
        flops += 2 * features * arch.dense_units
        features = arch.dense_units
    return flops + 2 * features


def keras_flops(model) -> int:
    """Forward FLOPs per image of a built Keras model, from its Conv2D and Dense layers."""
    import keras

    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            flops += 2 * kh * kw * layer.input.shape[-1] * c_out * h * w
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.input.shape[-1] * layer.units
    return int(flops)


def network_rate(model, x: np.ndarray, *, batch_size: int = 512, repeats: int = 3) -> float:
    """Images/s of the scoring path (:func:`~casnet.networks.inference.predict_array`) on ``x``
    (after a warm-up call), median of ``repeats``."""
    from casnet.networks.inference import predict_array

    predict_array(model, x[:batch_size], batch_size)
    if len(x) % batch_size:  # a short last batch has its own traced shape: not in the timing
        predict_array(model, x[: len(x) % batch_size], batch_size)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_array(model, x, batch_size)
        times.append(time.perf_counter() - t0)
    return len(x) / float(np.median(times))


def _data(n: int, input_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, input_size, input_size, 1), dtype=np.float32)
    y = x.mean(axis=(1, 2, 3)) * 3
    return x, y


def train_throughput(arch: ArchitectureConfig, n: int, *, batch_size: int | None = None,
                     input_size: int = 60, repeats: int = 1) -> dict[str, Any]:  # fmt: skip
    """Training images/s of ``arch`` (one epoch over ``n`` images, median of ``repeats``).

    Returns
    -------
    dict
        ``images_per_s``, ``s_per_epoch``, ``batch_size`` and ``gflops`` (achieved, counting a
        training step as three forward passes: forward, and the two gradient products).
    """
    from casnet.networks.architecture import build_model

    batch = batch_size or arch.batch_size
    x, y = _data(n, input_size)
    model = build_model(arch, input_size=input_size)
    fit = {"batch_size": batch, "epochs": 1, "shuffle": False, "verbose": 0}
    model.fit(x, y, **fit)  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(x, y, **fit)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    rate = n / seconds
    return {"images_per_s": rate, "s_per_epoch": seconds, "batch_size": batch,
            "gflops": 3 * forward_flops(arch, input_size) * rate / 1e9}  # fmt: skip


def predict_throughput(arch: ArchitectureConfig, n: int, *, batch_size: int = 512,
                       input_size: int = 60, repeats: int = 1) -> dict[str, Any]:  # fmt: skip
    """Inference images/s of ``arch`` (:func:`network_rate` over ``n`` images in memory)."""
    from casnet.networks.architecture import build_model

    x, _ = _data(n, input_size)
    rate = network_rate(build_model(arch, input_size=input_size), x, batch_size=batch_size,
                        repeats=repeats)  # fmt: skip
    return {"images_per_s": rate, "batch_size": batch_size,
            "gflops": forward_flops(arch, input_size) * rate / 1e9}  # fmt: skip


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 ``size`` x ``size`` matrix product on the Keras backend (reference)."""
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    b = ops.convert_to_tensor(rng.random((size, size), dtype=np.float32))
    ops.convert_to_numpy(ops.matmul(a, b))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ops.convert_to_numpy(ops.sum(ops.matmul(a, b)))  # a scalar back: waits for the device
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / float(np.median(times)) / 1e9


def accelerators() -> list[str]:
    """GPUs visible to the Keras backend (empty on CPU)."""
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        n = torch.cuda.device_count()
        return [torch.cuda.get_device_name(i) for i in range(n)]
    return []


def benchmark_train(
    model: ModelConfig, n: int, *, repeats: int = 1, batch_size: int | None = None
) -> dict[str, Any]:
    """Training and inference throughput of the ``model`` params' two networks on ``n`` random
    60x60 images (``casnet benchmark train``): per network images/s and GFLOP/s, with the machine
    and a float32 matmul's GFLOP/s as the reference."""
    import keras

    from casnet.bench.speed import machine_info

    machine = {**machine_info(), "gpus": accelerators(), "keras_backend": keras.config.backend()}
    rows = {}
    for target in ("asymmetry", "concentration"):
        arch = getattr(model, target)
        rows[target] = {
            "train": train_throughput(arch, n, batch_size=batch_size, repeats=repeats),
            "predict": predict_throughput(arch, n, batch_size=batch_size or 512, repeats=repeats),
            "gflop_per_image": forward_flops(arch) / 1e9,
        }
    return {"machine": machine, "matmul_gflops": matmul_gflops(), "n": n, "networks": rows}


def format_train_report(report: dict[str, Any], search: SearchConfig) -> str:
    """The :func:`benchmark_train` table, and what a paper-scale ``search`` costs at that speed."""
    machine, rows = report["machine"], report["networks"]
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores, GPU: "
        f"{', '.join(machine['gpus']) or 'none'}; Keras backend {machine['keras_backend']}; "
        f"float32 matmul {report['matmul_gflops']:.0f} GFLOP/s",
        "| network | batch | train images/s | train GFLOP/s | predict images/s "
        "| predict GFLOP/s | paper-scale epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for target, r in rows.items():
        epoch_min = PAPER_TRAINING_IMAGES / r["train"]["images_per_s"] / 60
        lines.append(
            f"| {target} | {r['train']['batch_size']} | {r['train']['images_per_s']:.0f} "
            f"| {r['train']['gflops']:.1f} | {r['predict']['images_per_s']:.0f} "
            f"| {r['predict']['gflops']:.1f} | {epoch_min:.1f} min |"
        )
    slowest = min(r["train"]["images_per_s"] for r in rows.values())
    hours = search.max_trials * search.max_epochs * PAPER_TRAINING_IMAGES / slowest / 3600
    lines.append(
        f"a paper-scale search ({search.max_trials} trials x at most {search.max_epochs} epochs x "
        f"{PAPER_TRAINING_IMAGES} images) at the slower network's speed: at most {hours:.0f} h "
        "(early stopping ends most trials sooner; searched architectures vary in cost)"
    )
    return "\n".join(lines)
