"""Customer-lifetime-value models: BG/NBD purchases and dropout, Gamma-Gamma spend, discounted CLV.

Pure NumPy/SciPy on arrays (no database). Times are in periods — days in Siyu — and money in whatever
unit the caller passes (fen as floats; round CLV to integer fen when storing it — house rule 2).
Every function raises :class:`ModelError` (a ``ValueError``) with a plain reason on data it cannot use,
and never returns NaN.
"""

from siyu.models._common import ModelError
from siyu.models.bgnbd import BGNBDFit, fit_bgnbd
from siyu.models.clv import clv
from siyu.models.gammagamma import GammaGammaFit, fit_gamma_gamma

__all__ = ["BGNBDFit", "GammaGammaFit", "ModelError", "clv", "fit_bgnbd", "fit_gamma_gamma"]
