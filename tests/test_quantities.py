"""One schema for the quantities (issue 32 item 1): its names and columns, how an error on each
is expressed, and models that load by their own quantities rather than the code's, so the
shipped model keeps loading when a quantity is added."""

from __future__ import annotations

import numpy as np
import pytest

from casnet.core import layout, quantities
from casnet.core.quantities import SCHEMA, TARGETS, quantity, symbol, targets_of
from casnet.networks import pretrained, trust


def test_the_schema_names_each_quantity_once():
    assert TARGETS == ("concentration", "asymmetry") == layout.TARGETS
    assert [t.symbol for t in SCHEMA] == ["C", "A"] and symbol("asymmetry") == "A"
    c = quantity("concentration")
    assert (c.column("label"), c.column("truth"), c.column("conventional"), c.column("network"),
            c.column("store"), c.column("store_truth")) == (
        "label_concentration", "true_concentration", "conventional_concentration",
        "net_concentration", "concentration", "concentration_true")  # fmt: skip
    assert c.err() == "concentration_err" and c.err("network") == "net_concentration_err"
    assert layout.ERR == quantities.ERR
    assert layout.NETWORK_MODELS == {t: f"casnet-{t}" for t in TARGETS}
    with pytest.raises(KeyError, match="casnet knows concentration, asymmetry"):
        quantity("smoothness")
    assert [t.name for t in targets_of(["asymmetry", "smoothness", "concentration"])] == [
        "asymmetry", "concentration"]  # fmt: skip
    # the paper's numbers (Tohill et al. 2021 Sec. 4.1) live with their quantity
    assert quantity("asymmetry").paper["pearson_r"] == 0.76


def test_residuals_are_fractional_for_c_and_absolute_for_a():
    c, a = quantity("concentration"), quantity("asymmetry")
    np.testing.assert_allclose(c.residual_of([3.3, 1.8], [3.0, 2.0]), [0.1, -0.1])
    np.testing.assert_allclose(a.residual_of([0.3, 0.1], [0.2, 0.2]), [0.1, -0.1])
    assert c.residual_label("network - truth", "truth") == "C: (network - truth) / truth"
    assert a.residual_label("network - truth", "truth") == "A: network - truth"


def test_a_model_loads_by_its_own_quantities():
    both = {"concentration": {"path": "artifacts/concentration"},
            "asymmetry": {"path": "artifacts/asymmetry"}}  # fmt: skip
    # registered before issue 32: no record, the schema's order
    assert trust.model_targets(both, {"clean": {}}) == ("concentration", "asymmetry")
    assert trust.model_targets(both, None) == ("concentration", "asymmetry")
    # registered since: its record, in its order
    assert trust.model_targets(both, {"targets": ["asymmetry", "concentration"]}) == (
        "asymmetry", "concentration")  # fmt: skip
    only_a = {"asymmetry": both["asymmetry"]}
    assert trust.model_targets(only_a, {"targets": ["asymmetry"]}) == ("asymmetry",)
    for artifacts, config, why in (
        ({}, None, "no networks"),
        ({**both, "smoothness": {}}, None, r"\['smoothness'\] are not one network per target"),
        (only_a, None, "without recorded targets"),  # a legacy model held C and A
        (both, {"targets": ["asymmetry"]}, "not its networks"),
        (both, {"targets": ["asymmetry", "asymmetry"]}, "not its networks"),
        (both, {"targets": "asymmetry"}, "not its networks"),
    ):
        with pytest.raises(ValueError, match=why):
            trust.model_targets(artifacts, config)


@pytest.mark.slow
def test_the_shipped_model_loads_and_predicts_the_same_when_a_quantity_is_added(monkeypatch):
    """The packaged pretrained model (the one shipped before issue 32 has no recorded targets:
    the schema's order of its networks) loads and scores the same once the code knows a third
    quantity: it is loaded by its own networks."""
    from casnet.data.settings import SimulateConfig
    from casnet.data.simulate import simulate_galaxy

    gals = [simulate_galaxy(70_000 + i, SimulateConfig()) for i in range(4)]
    request = {"stamp": [g.image for g in gals], "galaxy_id": [g.galaxy_id for g in gals]}
    model = pretrained.folder_of("pretrained") / "model"
    first = trust.load_combined(model, "pretrained")
    assert first.unwrap_python_model().targets == TARGETS
    before = first.predict(request)
    monkeypatch.setattr(trust, "TARGETS", (*TARGETS, "smoothness"))
    again = trust.load_combined(model, "pretrained")
    assert again.unwrap_python_model().targets == TARGETS
    after = again.predict(request)
    assert list(after.columns) == list(before.columns)
    np.testing.assert_allclose(after.drop(columns="galaxy_id").to_numpy(float),
                               before.drop(columns="galaxy_id").to_numpy(float))  # fmt: skip
