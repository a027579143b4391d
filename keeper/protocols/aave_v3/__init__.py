"""Aave v3 and its forks: version families (``families``), their exact integer maths (``maths``),
the pool's metadata (``metadata``) and the batched reader (``adapter``)."""

from keeper.protocols.aave_v3.adapter import SEL_ACCOUNT_DATA, AaveV3Adapter, HealthMode
from keeper.protocols.aave_v3.families import REVISIONS, Family, family_for

__all__ = ["REVISIONS", "SEL_ACCOUNT_DATA", "AaveV3Adapter", "Family", "HealthMode", "family_for"]
