"""Holdout and variant assignment: pure, stable functions of the campaign and member ids.

A member's group is ``sha256("holdout:{campaign_id}:{member_id}")`` read as a number in
``[0, 10 000)``: below ``holdout_bp`` it is the holdout. The variant uses another salt
(``variant:``), so which variant a member would get says nothing about its group and the
proportions of variants are the same inside the treatment group as in the whole audience.
No state, no randomness at run time: the same ids give the same answer on any machine, in any
process, after any restart — which is what makes a member's group never change, and what lets a
broadcast compute groups for 2,000 members in Python without a round trip each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

BASIS_POINTS = 10_000
_HOLDOUT_SALT = "holdout"
_VARIANT_SALT = "variant"


def _bucket(salt: str, campaign_id: str, member_id: str) -> int:
    """A uniform number in ``[0, 10 000)``: the first 8 bytes of the digest modulo 10 000 (the
    modulo bias of 2**64 is below 10**-15)."""
    digest = hashlib.sha256(f"{salt}:{campaign_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BASIS_POINTS


def group_of(campaign_id: str, member_id: str, holdout_bp: int) -> str:
    """``"holdout"`` for ``holdout_bp`` basis points of members, else ``"treatment"``."""
    return "holdout" if _bucket(_HOLDOUT_SALT, campaign_id, member_id) < holdout_bp else "treatment"


def variant_of(campaign_id: str, member_id: str, variants: Sequence[Mapping[str, Any]]) -> str:
    """The variant key whose cumulative ``weight_bp`` range holds the member's bucket (variants
    in their listed order; weights sum to 10 000 — the last variant takes any remainder)."""
    if not variants:
        raise ValueError("a campaign has at least one variant")
    bucket = _bucket(_VARIANT_SALT, campaign_id, member_id)
    upper = 0
    for variant in variants:
        upper += int(variant.get("weight_bp", 0))
        if bucket < upper:
            return str(variant["key"])
    return str(variants[-1]["key"])
