"""The heteroscedastic Gaussian head (casnet.networks.uncertainty): its loss is the RMSE of the
mean plus the Gaussian negative log-likelihood of the sigma with the mean held fixed, and a network
trained with it recovers a known noise level."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from casnet.core.calibration import coverage
from casnet.networks.uncertainty import OfMean, gaussian_loss, gaussian_nll, mean_and_sigma


def test_the_loss_is_the_gaussian_nll():
    rng = np.random.default_rng(1)
    y = rng.normal(size=64).astype(np.float32)
    out = rng.normal(size=(64, 2)).astype(np.float32)
    mu, sigma = mean_and_sigma(out)
    expected = np.mean(np.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2)
    got = float(keras.ops.convert_to_numpy(gaussian_nll(y[:, None], out)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert (sigma > 0).all()
    with pytest.raises(ValueError, match=r"got \(64, 3\)"):
        mean_and_sigma(np.zeros((64, 3)))


def test_the_heads_loss_is_the_means_rmse_plus_the_nll_of_a_fixed_mean():
    tf = pytest.importorskip("tensorflow")  # gradients through the backend (CI: TensorFlow)
    rng = np.random.default_rng(2)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    out = tf.Variable(rng.normal(size=(32, 2)).astype(np.float32))
    mu, _ = mean_and_sigma(out.numpy())
    rmse = np.sqrt(np.mean((y[:, 0] - mu) ** 2))
    nll = float(keras.ops.convert_to_numpy(gaussian_nll(y, out)))
    with tf.GradientTape() as tape:
        loss = gaussian_loss(y, out)
    assert float(loss) == pytest.approx(rmse + nll, rel=1e-5)
    grad = tape.gradient(loss, out).numpy()
    # the mean's gradient is the RMSE's alone: a large sigma cannot damp it
    np.testing.assert_allclose(grad[:, 0], (mu - y[:, 0]) / (len(y) * rmse), rtol=1e-4)
    assert np.abs(grad[:, 1]).max() > 0  # the sigma learns from the likelihood


def _model() -> keras.Model:
    inputs = keras.Input(shape=(1,))
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=gaussian_loss,
                  metrics=[OfMean(keras.metrics.RootMeanSquaredError(name="rmse"))])  # fmt: skip
    return model


@pytest.mark.slow
def test_the_head_recovers_a_known_noise_level(tmp_path):
    """y = 2x + noise, the noise 0.05 for x < 0 and 0.25 for x > 0: the predicted sigma finds
    both levels and covers 68% at 1 sigma; the RMSE metric is of the mean."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (6000, 1)).astype(np.float32)
    level = np.where(x[:, 0] < 0, 0.05, 0.25)
    y = (2 * x[:, 0] + rng.normal(0, level)).astype(np.float32)
    model = _model()
    history = model.fit(x[:5000], y[:5000], epochs=40, batch_size=100, verbose=0)
    assert "rmse" in history.history
    mu, sigma = mean_and_sigma(model.predict(x[5000:], verbose=0))
    left, right = x[5000:, 0] < -0.1, x[5000:, 0] > 0.1
    assert np.median(sigma[left]) == pytest.approx(0.05, rel=0.3)
    assert np.median(sigma[right]) == pytest.approx(0.25, rel=0.2)
    assert 0.60 <= coverage(y[5000:], mu, sigma) <= 0.76
    assert 0.90 <= coverage(y[5000:], mu, sigma, k=2.0) <= 0.98
    # saved and loaded with its loss and metric (the registry stores Keras files)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x[:10], verbose=0), model.predict(x[:10], verbose=0))
    assert again.evaluate(x[5000:], y[5000:], verbose=0, return_dict=True)["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((mu - y[5000:]) ** 2))), rel=1e-3
    )


def test_sigma_scale_multiplies_the_sigma_and_keeps_the_mean(tmp_path):
    from casnet.networks.uncertainty import with_sigma_scale

    model = _model()
    x = np.linspace(-1, 1, 50, dtype=np.float32)[:, None]
    mu, sigma = mean_and_sigma(model.predict(x, verbose=0))
    scaled = with_sigma_scale(model, 0.37)
    mu2, sigma2 = mean_and_sigma(scaled.predict(x, verbose=0))
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)
    np.testing.assert_allclose(sigma2, 0.37 * sigma, rtol=1e-4)
    path = tmp_path / "s.keras"
    scaled.save(path)  # the factor travels inside the network
    again = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(mean_and_sigma(again.predict(x, verbose=0))[1], sigma2, rtol=1e-6)


@pytest.mark.parametrize("mode", ["shared", "detached"])
def test_a_detached_sigma_trains_only_its_own_weights(mode, tmp_path):
    """sigma_gradient: detached (issue 30 item 3): the sigma column's loss reaches the output
    layer's sigma weights but no weight of the trunk; shared, it reaches the trunk too. The
    mean is the same function either way, and the layer survives a safe-mode load and is read
    back by the fine-tuning's architecture reader."""
    tf = pytest.importorskip("tensorflow")
    from casnet.networks.architecture import build_model
    from casnet.networks.settings import ArchitectureConfig
    from casnet.networks.train import _architecture_of
    from casnet.networks.uncertainty import DetachedSigmaDense

    arch = ArchitectureConfig(blocks=1, conv_per_block=1, filters=2, dense_layers=1,
                              dense_units=4, dropout=0.0, head="gaussian",
                              sigma_gradient=mode)  # fmt: skip
    keras.utils.set_random_seed(0)
    net = build_model(arch, input_size=12)
    x = np.random.default_rng(3).random((4, 12, 12, 1)).astype(np.float32)
    trunk = net.get_layer("dense0").kernel
    head = net.get_layer("output").kernel
    with tf.GradientTape(persistent=True) as tape:
        sigma_part = tf.reduce_sum(net(x, training=True)[:, 1])
        mean_part = tf.reduce_sum(net(x, training=True)[:, 0])
    assert np.abs(tape.gradient(sigma_part, head).numpy()[:, 1]).sum() > 0
    trunk_grad = np.abs(tape.gradient(sigma_part, trunk).numpy()).sum()
    assert (trunk_grad == 0) == (mode == "detached")
    assert np.abs(tape.gradient(mean_part, trunk).numpy()).sum() > 0  # the mean trains it
    assert isinstance(net.get_layer("output"), DetachedSigmaDense) == (mode == "detached")
    path = tmp_path / "net.keras"
    net.save(path)
    again = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-6)
    read = _architecture_of(again, arch, 1e-3, name="test")
    assert read.sigma_gradient == mode and read.head == "gaussian"


@pytest.mark.parametrize("clipnorm", [0.0, 1.0])
def test_the_optimizer_clips_the_global_gradient_norm(clipnorm):
    """clipnorm (issue 30 item 1): one batch whose loss gradient is huge (a label far off with a
    tiny sigma) moves the weights by at most what a unit-norm gradient would under SGD; with
    clipnorm 0 nothing is clipped and the same step is orders of magnitude larger."""
    from casnet.networks.architecture import build_model
    from casnet.networks.settings import ArchitectureConfig

    arch = ArchitectureConfig(blocks=1, conv_per_block=1, filters=2, dense_layers=1,
                              dense_units=4, dropout=0.0, head="gaussian", optimizer="sgd",
                              learning_rate=0.1, clipnorm=clipnorm)  # fmt: skip
    keras.utils.set_random_seed(0)
    net = build_model(arch, input_size=12)
    assert net.optimizer.global_clipnorm == (clipnorm or None)
    x = np.random.default_rng(3).random((8, 12, 12, 1)).astype(np.float32)
    y = np.full((8, 1), 1e4, np.float32)  # far from any initial mean: a huge gradient
    weights = lambda: [keras.ops.convert_to_numpy(w) for w in net.trainable_weights]  # noqa: E731
    before = weights()
    net.train_on_batch(x, y)
    step = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(weights(), before, strict=True)))
    # plain SGD's step is lr x gradient: at most lr x clipnorm when clipped
    if clipnorm:
        assert step <= 0.1 * clipnorm * (1 + 1e-4)
    else:
        assert step > 10
