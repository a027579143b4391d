"""An Aave v3 pool's slow-changing metadata, read per version family: its revision, reserves
(tokens, configuration words, stable debt where it exists) and e-mode categories.

e-mode before v3.2: a reserve's category sits in its configuration word (bits 168-175); the
category (``getEModeCategoryData``) has a liquidation threshold and an optional price source.
Since v3.2 those bits are always 0 and there is no price source: a category's collateral bitmap
(``getEModeCategoryCollateralBitmap``) lists the reserves its threshold
(``getEModeCategoryCollateralConfig``) applies to. Categories are not enumerable on chain, so
every id 1-255 is read (one batch, at each refresh) and the non-empty ones kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi.abi import decode

from keeper.chain.multicall import Call, Multicall
from keeper.domain import ZERO_ADDRESS, Address, Asset
from keeper.errors import ConfigError
from keeper.protocols.aave_v3.families import LATEST, V30, Family, family_for, known_revisions
from keeper.protocols.aave_v3.maths import ReserveConfig, in_bitmap
from keeper.protocols.base import address_word, enc_address, enc_uint, word

SEL_ALL_RESERVES = bytes.fromhex("b316ff89")  # DataProvider.getAllReservesTokens()
SEL_RESERVES_LIST = bytes.fromhex("d1946dbc")  # Pool.getReservesList()
SEL_RESERVE_DATA = bytes.fromhex("35ea6a75")  # Pool.getReserveData(address)
SEL_TOTAL_SUPPLY = bytes.fromhex("18160ddd")  # totalSupply()
SEL_REVISION = bytes.fromhex("0148170e")  # Pool.POOL_REVISION()
SEL_EMODE_DATA = bytes.fromhex("6c6f6ae1")  # Pool.getEModeCategoryData(uint8) (v3.0-3.1 meaning)
SEL_EMODE_CONFIG = bytes.fromhex("b286f467")  # Pool.getEModeCategoryCollateralConfig(uint8) (v3.2+)
SEL_EMODE_BITMAP = bytes.fromhex("b0771dba")  # Pool.getEModeCategoryCollateralBitmap(uint8) (v3.2+)
MAX_CATEGORY = 255


@dataclass(frozen=True)
class Reserve:
    asset: Asset
    liquidation_threshold_bps: int
    ltv_bps: int
    liquidation_bonus_bps: int
    emode_category: int  # from the configuration word: meaningful before v3.2 only
    reserve_id: int = 0
    a_token: Address = ZERO_ADDRESS
    stable_debt_token: Address = ZERO_ADDRESS
    variable_debt_token: Address = ZERO_ADDRESS
    config_word: int = 0
    has_stable_debt: bool = False  # v3.0-3.1 and stableDebtToken.totalSupply() > 0: read balanceOf per borrower

    @property
    def unit(self) -> int:
        unit: int = 10**self.asset.decimals
        return unit

    @property
    def usable_as_collateral(self) -> bool:
        return self.liquidation_threshold_bps != 0


@dataclass(frozen=True)
class EModeCategory:
    liquidation_threshold_bps: int
    price_source: Address = ZERO_ADDRESS  # v3.0-3.1 only
    collateral_bitmap: int = 0  # v3.2+: reserve ids the category's threshold applies to

    def applies_to(self, family: Family, reserve: Reserve, category: int) -> bool:
        if family.emode_bitmaps:
            return in_bitmap(self.collateral_bitmap, reserve.reserve_id)
        return reserve.emode_category == category


@dataclass(frozen=True)
class Metadata:
    revision: int | None  # None: the pool has no POOL_REVISION getter
    family: Family
    reserves: list[Reserve]
    emode: dict[int, EModeCategory]
    reserves_list_raw: bytes
    # The raw answers of the calls that fingerprint the e-mode categories, per category, in the
    # order the adapter re-reads them every block (v3.0: getEModeCategoryData; v3.2+: config, bitmap).
    emode_raw: dict[int, tuple[bytes | int, ...]] = field(default_factory=dict)

    @property
    def sources(self) -> list[Address]:
        return sorted({c.price_source for c in self.emode.values() if int(c.price_source, 16)})


def read_revision(mc: Multicall, pool: Address, block: int) -> int | None:
    (r,) = mc.call([Call(pool, SEL_REVISION)], block)
    return word(r.data, 0) if r.success and len(r.data) == 32 else None


def choose_family(mc: Multicall, pool: Address, revision: int | None, health: str, block: int) -> Family:
    fam = family_for(revision) if revision is not None else None
    if fam is not None:
        return fam
    if health == "pool":
        # Health comes from getUserAccountData; the family only shapes the legs (amounts, e-mode
        # thresholds), so take the newest family whose getters this pool answers.
        (probe,) = mc.call([Call(pool, SEL_EMODE_BITMAP + enc_uint(1))], block)
        return LATEST if probe.success and len(probe.data) == 32 else V30
    what = "has no POOL_REVISION()" if revision is None else f"has revision {revision}"
    raise ConfigError(f"the Aave pool at {pool} {what}, which this keeper does not know (known: {known_revisions()}); "
                      "it will not compute health for it",
                      hint="set aave_v3.health = \"pool\" for this chain to read getUserAccountData for every account "
                           "(exact, slower), or upgrade the keeper")


def load(mc: Multicall, pool: Address, data_provider: Address, block: int, health: str) -> Metadata:
    revision = read_revision(mc, pool, block)
    family = choose_family(mc, pool, revision, health, block)
    tokens, listed = mc.call([Call(data_provider, SEL_ALL_RESERVES, allow_failure=False),
                              Call(pool, SEL_RESERVES_LIST, allow_failure=False)], block)
    (pairs,) = decode(["(string,address)[]"], tokens.data)
    symbols = {Address(addr): sym for sym, addr in pairs}
    addresses = [Address(a) for a in decode(["address[]"], listed.data)[0]]
    data = mc.call([Call(pool, SEL_RESERVE_DATA + enc_address(a), allow_failure=False) for a in addresses], block)
    cfgs = [ReserveConfig.from_word(word(d.data, 0)) for d in data]
    stable_tokens = [address_word(d.data, 9) for d in data]
    if family.stable_debt:
        supplies = mc.call([Call(t, SEL_TOTAL_SUPPLY) for t in stable_tokens], block)
        has_stable = [r.success and len(r.data) == 32 and word(r.data, 0) > 0 for r in supplies]
    else:
        has_stable = [False] * len(addresses)
    reserves: list[Reserve] = []
    for addr, d, cfg, stable in zip(addresses, data, cfgs, has_stable):
        reserves.append(Reserve(
            Asset(symbols.get(addr, addr), addr, cfg.decimals), cfg.liquidation_threshold, cfg.ltv,
            cfg.liquidation_bonus, 0 if family.emode_bitmaps else cfg.emode_category, word(d.data, 7),
            address_word(d.data, 8), stable_tokens[len(reserves)], address_word(d.data, 10), word(d.data, 0), stable))
    if family.emode_bitmaps:
        emode, emode_raw = _emode_bitmaps(mc, pool, block)
    else:
        emode, emode_raw = _emode_legacy(mc, pool, block, sorted({c.emode_category for c in cfgs if c.emode_category}))
    return Metadata(revision, family, reserves, emode, listed.data, emode_raw)


def _emode_legacy(mc: Multicall, pool: Address, block: int, categories: list[int]
                  ) -> tuple[dict[int, EModeCategory], dict[int, tuple[bytes | int, ...]]]:
    res = mc.call([Call(pool, SEL_EMODE_DATA + enc_uint(c), allow_failure=False) for c in categories], block)
    emode: dict[int, EModeCategory] = {}
    raw: dict[int, tuple[bytes | int, ...]] = {}
    for c, r in zip(categories, res):
        # EModeCategory(uint16 ltv, uint16 liquidationThreshold, uint16 liquidationBonus, address priceSource,
        #               string label)
        emode[c] = EModeCategory(word(r.data, 2), address_word(r.data, 4))
        raw[c] = (r.data,)
    return emode, raw


def _emode_bitmaps(mc: Multicall, pool: Address, block: int
                   ) -> tuple[dict[int, EModeCategory], dict[int, tuple[bytes | int, ...]]]:
    ids = range(1, MAX_CATEGORY + 1)
    res = mc.call([Call(pool, sel + enc_uint(c)) for c in ids for sel in (SEL_EMODE_CONFIG, SEL_EMODE_BITMAP)], block)
    emode: dict[int, EModeCategory] = {}
    raw: dict[int, tuple[bytes | int, ...]] = {}
    for k, c in enumerate(ids):
        conf, bitmap = res[2 * k], res[2 * k + 1]
        if not (conf.success and len(conf.data) == 96 and bitmap.success and len(bitmap.data) == 32):
            raise ConfigError(f"the Aave pool at {pool} did not answer getEModeCategoryCollateralConfig/"
                              f"getEModeCategoryCollateralBitmap({c}) as a v3.2+ pool does")
        lt, bits = word(conf.data, 1), word(bitmap.data, 0)
        if lt or bits:
            emode[c] = EModeCategory(lt, ZERO_ADDRESS, bits)
            raw[c] = (conf.data, bits)
    return emode, raw
