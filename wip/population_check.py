"""Population check: survival per cut and kind, label percentiles (issue 15 targets)."""
import sys, numpy as np, pandas as pd
from pathlib import Path
from casnet.data.settings import SimulateConfig, CleanConfig, StoreConfig, SelectConfig
from casnet.pipeline.settings import DaskConfig
from casnet.morphology.settings import MorphologyConfig
from casnet.pipeline import simulate, clean, measure, select
n = int(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
serial = DaskConfig(workers=0); st = StoreConfig(chunk_size=64)
raw = simulate.run(SimulateConfig(), n, st, out / "raw", dask=serial, show_progress=False)
cl = clean.run(CleanConfig(), st, out / "raw", out / "clean", dask=serial, show_progress=False)
measure.run(MorphologyConfig(), out / "clean", out / "m.parquet", dask=serial, show_progress=False)
sel, metrics = select.run(SelectConfig(), st, out / "clean", out / "m.parquet", out / "sel", show_progress=False)
print(metrics)
cat = raw.catalog; m = pd.read_parquet(out / "m.parquet")
kept = set(sel.catalog.galaxy_id)
cat["kept"] = cat.galaxy_id.isin(kept)
print("survival", cat.kept.mean(), "by kind", cat.groupby("kind").kept.mean().round(2).to_dict())
s = sel.catalog
C, A = s.label_concentration, s.label_asymmetry
print("C p5/p50/p95", np.percentile(C, [5, 50, 95]).round(2), ">4:", (C > 4).mean().round(3))
print("A p5/p50/p95", np.percentile(A, [5, 50, 95]).round(3), ">0.15:", (A > 0.15).mean().round(3), ">0.3:", (A > 0.3).mean().round(3), "neg:", (A < 0).mean().round(3))
print("NO_SOURCE frac", ((m.flag & 4) > 0).mean().round(3))
