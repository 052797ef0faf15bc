import math

import numpy as np
import pytest
import xarray as xr

from lprcausal.errors import LprError
from lprcausal.stats import TestRecord, mediation_tests, paired_t, records_to_dataset


def grid_records():
    rng = np.random.default_rng(0)
    records = []
    for pair in ("lr:a|b", "wd:a|b"):
        for sparsity in (0.8, 0.9):
            for rec in mediation_tests(rng.integers(0, 1000, size=(2, 2, 5)) / 10):
                rec.coords.update(pair=pair, sparsity=sparsity, h_find=3)
                records.append(rec)
    return records


def test_dataset_has_one_entry_per_record_with_coords():
    records = grid_records()
    ds = records_to_dataset(records)
    assert ds.sizes["record"] == len(records) == 24
    assert ds["sparsity"].dtype == np.float64
    assert ds["h_find"].dtype == np.int64
    assert list(ds["pair"].values) == ["lr:a|b"] * 12 + ["wd:a|b"] * 12
    assert ds["estimand"].values[1] == "NIE_a"
    assert ds["p"].values[0] == records[0].p
    assert ds["n"].values[0] == 5


def test_missing_coord_values_become_nan_or_empty_string():
    r1, r2 = paired_t([1.0, 2.0, 3.0]), paired_t([1.0, 2.0, 4.0])
    r1.coords.update(pair="x", sparsity=0.5)
    ds = records_to_dataset([r1, r2])
    assert list(ds["pair"].values) == ["x", ""]
    assert ds["sparsity"].values[0] == 0.5 and math.isnan(ds["sparsity"].values[1])


def test_round_trip_through_h5netcdf(tmp_path):
    ds = records_to_dataset(grid_records())
    path = tmp_path / "tests.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)


def test_unstacked_dataset_round_trips_through_h5netcdf(tmp_path):
    ds = records_to_dataset(grid_records(), dims=("pair", "sparsity", "estimand"))
    path = tmp_path / "tests.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)


def test_unstack_keeps_first_seen_order_and_fills_gaps():
    records = grid_records()[:-1]  # the last cell (wd, 0.9, INT) has no record
    ds = records_to_dataset(records, dims=("pair", "sparsity", "estimand"))
    assert dict(ds.sizes) == {"pair": 2, "sparsity": 2, "estimand": 6}
    assert list(ds["estimand"].values) == ["TE", "NIE_a", "NIE_b", "NDE_a", "NDE_b", "INT"]
    assert ds["p"].sel(pair="lr:a|b", sparsity=0.8, estimand="TE").item() == records[0].p
    gap = ds.sel(pair="wd:a|b", sparsity=0.9, estimand="INT")
    assert math.isnan(gap["p"].item()) and gap["test"].item() == ""


def test_unstack_rejects_dims_that_do_not_identify_records():
    with pytest.raises(LprError, match="uniquely"):
        records_to_dataset(grid_records(), dims=("pair",))


def test_coords_may_not_reuse_record_field_names():
    rec = paired_t([1.0, 2.0, 3.0])
    rec.coords["test"] = "x"
    with pytest.raises(LprError, match="test"):
        records_to_dataset([rec])


def test_record_defaults_mean_not_yet_adjusted():
    rec = TestRecord(
        estimand="e",
        estimate=1.0,
        ci_low=0.0,
        ci_high=2.0,
        ci_level=0.95,
        ci_method="t",
        statistic=1.0,
        df=3.0,
        p=0.5,
        n=4,
        test="t",
        library="scipy",
    )
    assert math.isnan(rec.p_adj) and rec.correction == "none" and rec.family == ""
    assert rec.coords == {}
