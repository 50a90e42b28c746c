"""The CDNOW sample as Fader, Hardie & Lee used it, from the files the ``lifetimes`` package ships.

2357 customers who first bought in the first 12 weeks of 1997; the calibration period ends on 1997-09-30
(week 39). Purchases on the same day are one transaction (the convention of the papers: the shipped
summary's frequencies agree with it for every customer); times are in weeks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

import lifetimes
import numpy as np
import pandas as pd

from siyu.models._common import Floats

DATASETS = os.path.join(os.path.dirname(lifetimes.__file__), "datasets")
CALIBRATION_END = date(1997, 9, 30)


@dataclass(frozen=True)
class Summary:
    frequency: Floats
    recency: Floats
    T: Floats
    monetary: Floats


@cache
def shipped_summary() -> Summary:
    """``cdnow_customers_summary_with_transactions.csv``: times and average spend rounded to 2 decimals."""
    frame = pd.read_csv(os.path.join(DATASETS, "cdnow_customers_summary_with_transactions.csv"))
    return Summary(*(frame[c].to_numpy(dtype=np.float64) for c in ("x", "t_x", "T", "zbar")))


@cache
def raw_summary() -> Summary:
    """The same customers summarised from ``CDNOW_sample.txt`` at full precision (exact weeks, exact
    average spend of the repeat transactions, computed in cents)."""
    frame = pd.read_csv(
        os.path.join(DATASETS, "CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["master_id", "id", "date", "cds", "dollars"],
        dtype={"date": str, "dollars": str},
    )
    frame["day"] = pd.to_datetime(frame["date"], format="%Y%m%d").dt.date
    frame = frame[frame["day"] <= CALIBRATION_END]
    frame["cents"] = frame["dollars"].map(lambda v: int(Decimal(v) * 100))
    days = frame.groupby(["id", "day"], as_index=False)["cents"].sum().sort_values(["id", "day"])
    by = days.groupby("id")
    first, last = by["day"].min(), by["day"].max()
    x = (by.size() - 1).to_numpy(dtype=np.float64)
    repeat_cents = (by["cents"].sum() - by["cents"].first()).to_numpy(dtype=np.float64)
    weeks = np.vectorize(lambda a, b: (b - a).days / 7.0)
    return Summary(
        frequency=x,
        recency=weeks(first.to_numpy(), last.to_numpy()).astype(np.float64),
        T=weeks(first.to_numpy(), np.full(len(first), CALIBRATION_END, dtype=object)).astype(np.float64),
        monetary=np.where(x > 0, repeat_cents / 100.0 / np.maximum(x, 1), 0.0),
    )
