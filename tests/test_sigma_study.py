"""The sigma-gradient seed study (issue 30 item 3): its trainings, its scores by hand, its
verdict, and how it resumes. The trainings themselves are minutes each: the study's outputs are
committed under reports/science/ (``casnet science --sigma-study``)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from casnet.core.errors import CasnetError
from casnet.params import Params
from casnet.science import run as science_run
from casnet.science import sigma_study
from casnet.science.run import Step
from casnet.science.settings import ScienceConfig
from casnet.science.sigma_study import _scores, sigma_table, study_steps, verdicts


def _params(**science) -> Params:
    return Params().model_copy(update={"science": ScienceConfig(**science)})


def test_the_study_repeats_the_truth_trainings_with_a_detached_sigma():
    params = _params(seeds=[1, 2, 3])
    steps = study_steps(params)
    assert [s.name for s in steps] == [f"study-sigma-{t}-seed{s}"
                                       for t in ("concentration", "asymmetry")
                                       for s in (1, 2, 3)]  # fmt: skip
    runs = {s.name: s for s in science_run.plan(params)}
    for step in steps:
        t, seed = step.name.split("-")[2], step.name[-1]
        base = runs[f"train-{t}-truth-seed{seed}"]
        # the same command (search, budget, labels, seed, not registered), the sigma detached;
        # the training set and search are filled in as for the run's own step
        assert step.command == (*base.command, "--sigma-gradient", "detached")
        assert {"--labels", "truth", "--no-register", "--seed", seed} <= set(step.command)
        assert step.extra == base.extra and step.extra["train_set_of"] == t
    with pytest.raises(CasnetError, match="no truth networks"):
        study_steps(_params(label_sources=["label"]))


def test_scores_by_hand():
    truth = np.zeros(6)
    mu = np.array([0.5, 1.0, 2.0, 3.0, np.nan, 1.0])
    sigma = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.nan])
    snr = np.array([2.5, 2.9, 4.0, 20.0, 2.5, 3.0])
    out = _scores(truth, snr, mu, sigma)
    assert out["rmse"] == pytest.approx(np.sqrt((0.25 + 1 + 4 + 9 + 1) / 5))
    assert out["rmse_snr_2_3"] == pytest.approx(np.sqrt((0.25 + 1 + 1) / 3))  # 3.0 is in 2-3
    assert out["rmse_snr_3_5"] == pytest.approx(2.0)
    # |z| <= 1: 0.5 and 1 of the four with a sigma; <= 2: and 2
    assert out["coverage_1sigma"] == pytest.approx(0.5)
    assert out["coverage_2sigma"] == pytest.approx(0.75)


def _run(target, mode, seed, rmse, cov1=0.68, cov2=0.95):
    return {"target": target, "sigma_gradient": mode, "seed": seed, "val_rmse": rmse,
            "rmse": rmse, "rmse_snr_2_3": rmse * 2, "rmse_snr_3_5": rmse * 1.5,
            "coverage_1sigma": cov1, "coverage_2sigma": cov2}  # fmt: skip


def test_the_verdict_needs_a_difference_beyond_the_seed_spread():
    runs = [_run("asymmetry", "shared", s, r, cov1=c) for s, r, c in
            ((1, 0.10, 0.50), (2, 0.11, 0.52), (3, 0.12, 0.54))]  # fmt: skip
    runs += [_run("asymmetry", "detached", s, r, cov1=c) for s, r, c in
             ((1, 0.05, 0.66), (2, 0.06, 0.68), (3, 0.07, 0.70))]  # fmt: skip
    # concentration: the means differ by 0.005, the spread is 0.05: no verdict either way
    runs += [_run("concentration", "shared", s, r) for s, r in ((1, 0.10), (2, 0.20), (3, 0.15))]
    runs += [_run("concentration", "detached", s, r) for s, r in ((1, 0.1), (2, 0.2), (3, 0.14))]
    table = sigma_table(runs)
    a = table.set_index(["target", "sigma_gradient"]).loc[("asymmetry", "shared")]
    assert a["n_seeds"] == 3 and a["seeds"] == "1, 2, 3"
    assert a["rmse_mean"] == pytest.approx(0.11) and a["rmse_sd"] == pytest.approx(0.01)
    v = verdicts(table).set_index(["target", "metric"])["verdict"]
    assert v[("asymmetry", "rmse")] == "detached better"
    assert v[("asymmetry", "rmse_snr_2_3")] == "detached better"
    # coverage is judged by its distance from the Gaussian 0.683: 0.68 beats 0.52
    assert v[("asymmetry", "coverage_1sigma")] == "detached better"
    assert v[("concentration", "rmse")] == "within the spread"
    assert v[("concentration", "coverage_2sigma")] == "within the spread"  # equal


def test_the_study_waits_for_the_run_then_resumes(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setattr(science_run, "_dvc", lambda args, cwd: (cwd / ".dvc").mkdir())
    params = _params(root="run", report="report", seeds=[1])
    with pytest.raises(CasnetError, match="has not trained its truth networks"):
        sigma_study.run_sigma_study(params, project)
    root = project / "run"
    marker = tmp_path / "ran.txt"
    done = {"params_hash": science_run._params_hash(root)}
    done.update({f"train-{t}-truth-seed1": {"run_id": f"shared-{t}", "finished": "x"}
                 for t in ("concentration", "asymmetry")})  # fmt: skip
    (root / "steps.json").write_text(json.dumps(done))

    def steps(params, fail_at=None):
        out = []
        for t in ("concentration", "asymmetry"):
            code = f"open({str(marker)!r}, 'a').write({t!r} + '\\n'); print('run det{t}:')"
            if t == fail_at:
                code += "; raise SystemExit(3)"
            out.append(Step(f"study-sigma-{t}-seed1", (sys.executable, "-c", code),
                            run_id=r"^run (\w+):"))  # fmt: skip
        return out

    scored = {}

    def network_runs(root, done, names):
        scored.update(names)
        return [_run(t, mode, 1, 0.1 if mode == "shared" else 0.08)
                for name, mode in names.items() for t in [name.split("-")[1 if mode ==
                "shared" else 2]]]  # fmt: skip

    monkeypatch.setattr(sigma_study, "_network_runs", network_runs)
    monkeypatch.setattr(sigma_study, "study_steps", lambda p: steps(p, fail_at="asymmetry"))
    with pytest.raises(CasnetError, match="study-sigma-asymmetry-seed1 failed"):
        sigma_study.run_sigma_study(params, project)
    recorded = json.loads((root / "steps.json").read_text())
    assert recorded["study-sigma-concentration-seed1"]["run_id"] == "detconcentration"
    assert "train-asymmetry-truth-seed1" in recorded  # the run's records are kept
    monkeypatch.setattr(sigma_study, "study_steps", steps)
    md = sigma_study.run_sigma_study(params, project)
    assert marker.read_text().split() == ["concentration", "asymmetry", "asymmetry"]
    assert scored == {"train-concentration-truth-seed1": "shared",
                      "train-asymmetry-truth-seed1": "shared",
                      "study-sigma-concentration-seed1": "detached",
                      "study-sigma-asymmetry-seed1": "detached"}  # fmt: skip
    text = md.read_text()
    assert md == project / "report" / "sigma_gradient.md"
    assert "| asymmetry | detached | 1 |" in text and "| asymmetry | shared | 1 |" in text
    assert (project / "report" / "sigma_gradient.csv").exists()
