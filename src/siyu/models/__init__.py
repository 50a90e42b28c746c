"""Customer-lifetime-value models: BG/NBD purchases and dropout, Gamma-Gamma spend, discounted CLV.

Pure NumPy/SciPy on arrays (no database). Times are in periods — days in Siyu — and money in whatever
unit the caller passes (Siyu passes fen as floats and rounds CLV back to integer fen at its boundary).
"""

from siyu.models._common import ModelError
from siyu.models.bgnbd import BGNBDFit, fit_bgnbd

__all__ = ["BGNBDFit", "ModelError", "fit_bgnbd"]
