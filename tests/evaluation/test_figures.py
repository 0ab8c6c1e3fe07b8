"""The suites' figures read without the code (issue 31): physical axis names, a title that says
what is compared and N, the same y range for the network's and the conventional's panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from casnet.evaluation import figures


@pytest.fixture
def drawn(monkeypatch):
    """The figures the module makes, instead of their PNGs."""
    made = []

    def keep(fig, out):
        made.append(fig)
        return out

    monkeypatch.setattr(figures, "save_figure", keep)
    return made


def _summary(grid: str, values) -> pd.DataFrame:
    rows = [{"method": m, "target": t, grid: v, "mean": 0.01 * i, "std": 0.02, "n": 57}
            for m in ("network", "conventional") for t in ("concentration", "asymmetry")
            for i, v in enumerate(values)]  # fmt: skip
    return pd.DataFrame(rows)


def test_the_noise_and_redshift_figures_name_their_axes_and_say_n(drawn, tmp_path):
    figures.deviation_vs_grid(_summary("snr_target", (3, 5, 10)), "snr_target",
                              tmp_path / "n.png", reference=10, suite="noise suite")  # fmt: skip
    figures.deviation_vs_grid(_summary("z", (0.5, 1, 2)), "z", tmp_path / "z.png",
                              "value minus the truth", suite="redshift suite")  # fmt: skip
    noise, redshift = drawn
    c, a = noise.axes
    assert c.get_xlabel() == "SNR_p" and c.get_ylabel() == "C: deviation from SNR_p = 10"
    assert a.get_ylabel() == "A: deviation from SNR_p = 10"
    title = noise._suptitle.get_text()
    assert title.startswith("Noise suite: network and conventional") and "N = 57" in title
    assert redshift.axes[0].get_xlabel() == "redshift z"
    assert redshift.axes[1].get_ylabel() == "A: value minus the truth"
    for fig in drawn:
        for ax in fig.axes:
            assert "issue" not in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_the_residual_figure_shares_each_quantitys_range_and_says_what_it_compares(drawn, tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    table = pd.DataFrame({"snr_p": rng.uniform(2, 50, n), "true_concentration": 3.0,
                          "true_asymmetry": 0.1})  # fmt: skip
    table["net_concentration"] = 3.0 + rng.normal(0, 0.1, n)
    table["net_asymmetry"] = 0.1 + rng.normal(0, 0.01, n)
    table["conventional_concentration"] = 3.0 + rng.normal(0, 0.5, n)  # 5x the network's
    table["conventional_asymmetry"] = 0.1 + rng.normal(0, 0.05, n)
    figures.residuals_vs_snr(table, tmp_path / "r.png", reference="true",
                             methods=("net", "conventional"))  # fmt: skip
    (fig,) = drawn
    net_c, net_a, conv_c, conv_a = fig.axes
    assert net_c.get_ylim() == conv_c.get_ylim() and net_a.get_ylim() == conv_a.get_ylim()
    assert conv_c.get_ylabel() == "C: (conventional - truth) / truth"
    assert fig._suptitle.get_text() == (
        "Test set: network and conventional against the truth, by SNR_p (N = 40 galaxies)"
    )
