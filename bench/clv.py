"""BG/NBD + Gamma-Gamma fit on generated customers: siyu.models against lifetimes on the same data.

    python bench/clv.py --customers 1000000 [--seed 1] [--repeat 3] [--weighted-anchor]

Customers come from the models' own generative process (``siyu.models.simulate``: whole days, ages up to
a year, spend in fen). Both libraries fit the same arrays in the same run: ours takes the customers as
they are (it compresses them itself); the anchor is ``lifetimes.BetaGeoFitter().fit`` on every customer
and ``GammaGammaFitter().fit`` on the repeat buyers, as its documentation does. ``--weighted-anchor`` also
times lifetimes given the rows already compressed with weights (lifetimes supports that, but leaves the
compression to its user). Figures: seconds (ours: best of ``--repeat``; lifetimes: one run), the speed
ratio, the largest relative difference of the fitted parameters and the log-likelihood at each optimum.
Targets: ratio ≥ 10, parameter difference ≤ 1e-4.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from lifetimes import BetaGeoFitter, GammaGammaFitter
from rich.console import Console
from rich.table import Table

from siyu.models import clv, fit_bgnbd, fit_gamma_gamma
from siyu.models._common import compress_weighted
from siyu.models.bgnbd import log_likelihood as bg_log_likelihood
from siyu.models.gammagamma import log_likelihood as gg_log_likelihood
from siyu.models.simulate import simulate_customers

console = Console(width=150)
Result = TypeVar("Result")
TRUE = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 1500.0}


def timed(repeat: int, run: Callable[[], Result]) -> tuple[float, Result]:
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def max_relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours / theirs - 1.0)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--weighted-anchor", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    data = simulate_customers(args.customers, seed=args.seed, **TRUE)
    x, tx, T, m = data.frequency, data.recency, data.T, data.monetary
    repeat = x > 0
    console.print(
        f"generated {args.customers:,} customers ({int(repeat.sum()):,} repeat buyers, up to {int(x.max())} "
        f"repeat purchases) in {time.perf_counter() - started:.1f} s; true parameters {TRUE}"
    )

    ours_bg_s, bg = timed(args.repeat, lambda: fit_bgnbd(x, tx, T))
    ours_gg_s, gg = timed(args.repeat, lambda: fit_gamma_gamma(x, m))
    console.print(f"ours: BG/NBD {bg.n_rows:,} distinct rows, Gamma-Gamma {gg.n_rows:,} distinct rows")

    started = time.perf_counter()
    their_bg = BetaGeoFitter().fit(x, tx, T)
    their_bg_s = time.perf_counter() - started
    started = time.perf_counter()
    their_gg = GammaGammaFitter().fit(x[repeat], m[repeat])
    their_gg_s = time.perf_counter() - started

    ours_bg = np.array([bg.r, bg.alpha, bg.a, bg.b])
    theirs_bg = their_bg.params_[["r", "alpha", "a", "b"]].to_numpy()
    ours_gg = np.array([gg.p, gg.q, gg.v])
    theirs_gg = their_gg.params_[["p", "q", "v"]].to_numpy()
    bg_diff, gg_diff = max_relative(ours_bg, theirs_bg), max_relative(ours_gg, theirs_gg)
    their_bg_ll = float(bg_log_likelihood(*theirs_bg, x, tx, T).sum())
    their_gg_ll = float(gg_log_likelihood(*theirs_gg, x[repeat], m[repeat]).sum())

    table = Table("model", "ours s", "lifetimes s", "ratio", "max rel. param diff", "LL ours", "LL lifetimes")
    table.add_row(
        "BG/NBD",
        f"{ours_bg_s:.2f}",
        f"{their_bg_s:.2f}",
        f"{their_bg_s / ours_bg_s:.1f}×",
        f"{bg_diff:.1e}",
        f"{bg.log_likelihood:,.3f}",
        f"{their_bg_ll:,.3f}",
    )
    table.add_row(
        "Gamma-Gamma",
        f"{ours_gg_s:.2f}",
        f"{their_gg_s:.2f}",
        f"{their_gg_s / ours_gg_s:.1f}×",
        f"{gg_diff:.1e}",
        f"{gg.log_likelihood:,.3f}",
        f"{their_gg_ll:,.3f}",
    )
    ours_s, theirs_s = ours_bg_s + ours_gg_s, their_bg_s + their_gg_s
    table.add_row(
        "both",
        f"{ours_s:.2f}",
        f"{theirs_s:.2f}",
        f"{theirs_s / ours_s:.1f}×",
        f"{max(bg_diff, gg_diff):.1e}",
    )
    console.print(table)
    ours_params = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    their_params = {**their_bg.params_.to_dict(), **their_gg.params_.to_dict()}
    for name, params in (("ours", ours_params), ("lifetimes", their_params)):
        console.print(f"{name:<10} " + " ".join(f"{k}={float(v):.7g}" for k, v in params.items()))

    started = time.perf_counter()
    alive = bg.p_alive(x, tx, T)
    scored_s = time.perf_counter() - started
    started = time.perf_counter()
    next_30 = bg.expected_purchases(30.0, x, tx, T)
    expected_s = time.perf_counter() - started
    started = time.perf_counter()
    value = clv(bg, gg, x, tx, T, m, months=12, discount_rate=0.01)
    clv_s = time.perf_counter() - started
    console.print(
        f"scoring {len(x):,} customers (ours): P(alive) {scored_s:.2f} s, expected purchases in 30 days "
        f"{expected_s:.2f} s, 12-month CLV {clv_s:.2f} s; means {alive.mean():.4f}, {next_30.mean():.4f}, "
        f"{value.mean():,.1f} fen"
    )

    if args.weighted_anchor:
        (ux, utx, uT), counts = compress_weighted(x, tx, T, weights=np.ones(len(x)))
        (gx, gm), gcounts = compress_weighted(x[repeat], m[repeat], weights=np.ones(int(repeat.sum())))
        started = time.perf_counter()
        BetaGeoFitter().fit(ux, utx, uT, weights=counts)
        GammaGammaFitter().fit(gx, gm, weights=gcounts)
        weighted_s = time.perf_counter() - started
        console.print(
            f"lifetimes on rows we compressed for it: {weighted_s:.2f} s (ratio {weighted_s / ours_s:.1f}×, "
            "our compression time not counted on its side)"
        )

    met = theirs_s / ours_s >= 10 and max(bg_diff, gg_diff) <= 1e-4
    console.print("targets (≥ 10×, ≤ 1e-4): " + ("[green]met[/green]" if met else "[red]not met[/red]"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
