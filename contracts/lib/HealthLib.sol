// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {IMorpho, Id, MarketParams, Position} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";
import {IOracle} from "@morpho-org/morpho-blue/src/interfaces/IOracle.sol";
import {MathLib} from "@morpho-org/morpho-blue/src/libraries/MathLib.sol";
import {SharesMathLib} from "@morpho-org/morpho-blue/src/libraries/SharesMathLib.sol";
import {ORACLE_PRICE_SCALE} from "@morpho-org/morpho-blue/src/libraries/ConstantsLib.sol";
import {MorphoBalancesLib} from "@morpho-org/morpho-blue/src/libraries/periphery/MorphoBalancesLib.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IGmxVault} from "../interfaces/IGmxVault.sol";

/// @title HealthLib - one health number per position kind, read from the protocol itself.
/// @notice Every value is 1e18-scaled and means the same thing for every kind: below 1e18 the
///         position can be liquidated, `type(uint256).max` when it has no debt (no perp size).
///         Internal functions only, so they are inlined where they are used (no library linking):
///         Aave's one call in the KeeperVault, Morpho's and GMX's in its `VaultLens`.
library HealthLib {
    using MathLib for uint256;
    using SharesMathLib for uint256;

    uint256 internal constant WAD = 1e18;
    uint256 internal constant NO_DEBT = type(uint256).max;
    /// @dev GMX v1's BASIS_POINTS_DIVISOR: `maxLeverage` and fees are in basis points (10_000 = 1x).
    uint256 internal constant PERP_BASIS = 10_000;

    /// @notice Aave v3: the pool's own health factor (already 1e18-scaled, max without debt).
    function aave(address pool, address account) internal view returns (uint256 hf) {
        (,,,,, hf) = IPool(pool).getUserAccountData(account);
    }

    /// @notice Morpho Blue: maxBorrow * 1e18 / borrowed, computed exactly as Morpho's
    ///         `_isHealthy` does, with interest accrued up to this block
    ///         (`MorphoBalancesLib.expectedMarketBalances`), borrowed rounded up from shares.
    function morpho(address morpho_, bytes32 id, address account) internal view returns (uint256) {
        IMorpho m = IMorpho(morpho_);
        Position memory p = m.position(Id.wrap(id), account);
        if (p.borrowShares == 0) return NO_DEBT;
        MarketParams memory mp = m.idToMarketParams(Id.wrap(id));
        (,, uint256 totalBorrowAssets, uint256 totalBorrowShares) = MorphoBalancesLib.expectedMarketBalances(m, mp);
        uint256 borrowed = uint256(p.borrowShares).toAssetsUp(totalBorrowAssets, totalBorrowShares);
        if (borrowed == 0) return NO_DEBT;
        uint256 maxBorrow =
            uint256(p.collateral).mulDivDown(IOracle(mp.oracle).price(), ORACLE_PRICE_SCALE).wMulDown(mp.lltv);
        return Math.mulDiv(maxBorrow, WAD, borrowed);
    }

    /// @notice GMX v1 perp: 1e18 exactly at the edge of what `Vault.liquidatePosition` accepts.
    /// @dev Mirrors `VaultUtils.validateLiquidation(account, coll, index, isLong, false)`, the call
    ///      `liquidatePosition` makes (`_raise == false`, so a profit IS added to the collateral):
    ///        remaining  = collateral - loss, or collateral + profit (`Vault.getDelta`);
    ///        marginFees = `Vault.getFundingFee` (6 args) + the position fee on the whole size;
    ///        liquidatable iff loss > collateral, or remaining < marginFees + liquidationFeeUsd
    ///        (state 1), or remaining * maxLeverage < size * 10_000 (state 2; fees not subtracted).
    ///      health = 0 when loss > collateral or remaining < marginFees, else
    ///        min(remaining * maxLeverage * 1e18 / (size * 10_000),
    ///            (remaining - marginFees) * 1e18 / liquidationFeeUsd)
    ///      (the second term dropped when liquidationFeeUsd == 0); `type(uint256).max` without size.
    ///      Both terms are floored, so health < 1e18 exactly when validateLiquidation returns 1 or 2.
    ///
    ///      The position fee is the one a liquidation is charged, see `liquidationMarginFeeBps`:
    ///      when that rate equals the Vault's current `marginFeeBasisPoints` it is read from
    ///      `Vault.getPositionFee` (a fork's own VaultUtils is respected), otherwise it is GMX's
    ///      formula `size - size * (10_000 - bps) / 10_000` at the liquidation rate.
    ///
    ///      Funding is as of the Vault's last `updateCumulativeFundingRate`: liquidatePosition
    ///      updates it first, so callers that act on this number (the KeeperVault's keeper paths)
    ///      update it before reading. Prices are the Vault's `getMinPrice`/`getMaxPrice` as this
    ///      call sees them; liquidations read them with `includeAmmPrice` off, which differs only on
    ///      a deployment whose price feed has an AMM price enabled.
    function perp(address vault, address account, address collateralToken, address indexToken, bool isLong)
        internal
        view
        returns (uint256)
    {
        IGmxVault v = IGmxVault(vault);
        (uint256 size, uint256 collateral, uint256 averagePrice, uint256 entryFundingRate,,,, uint256 lastIncreased) =
            v.getPosition(account, collateralToken, indexToken, isLong);
        if (size == 0) return NO_DEBT;
        (bool hasProfit, uint256 delta) = v.getDelta(indexToken, size, averagePrice, isLong, lastIncreased);
        if (!hasProfit && collateral < delta) return 0;
        uint256 remaining = hasProfit ? collateral + delta : collateral - delta;
        uint256 marginFees = v.getFundingFee(account, collateralToken, indexToken, isLong, size, entryFundingRate)
            + _positionFee(v, account, collateralToken, indexToken, isLong, size);
        if (remaining < marginFees) return 0;
        uint256 byLeverage = Math.mulDiv(remaining * WAD, v.maxLeverage(), size * PERP_BASIS);
        uint256 liquidationFee = v.liquidationFeeUsd();
        if (liquidationFee == 0) return byLeverage;
        uint256 byFee = Math.mulDiv(remaining - marginFees, WAD, liquidationFee);
        return byLeverage < byFee ? byLeverage : byFee;
    }

    /// @notice The margin fee (bps) that liquidations of `vault`'s positions run with, and the
    ///         Vault's current one.
    /// @dev A Vault in `inPrivateLiquidationMode` is liquidated only by its registered liquidators:
    ///      on GMX the PositionManager, which wraps the call in the governor's `enableLeverage`, so
    ///      a GMX `Timelock` governor sets the Vault's fee to its own `marginFeeBasisPoints()` for
    ///      it (0.1% on GMX, where the Vault's fee at rest is 5%). So in that mode the governor's
    ///      getter wins, read with a bounded staticcall; a governor without it (an EOA, a multisig)
    ///      or answering more than 100% leaves the Vault's own rate, which is also what public
    ///      liquidations are charged. Assumed: a Timelock-governed Vault in private mode registers
    ///      only liquidators that go through `enableLeverage` (GMX's own set-up).
    function liquidationMarginFeeBps(address vault) internal view returns (uint256 liquidation, uint256 current) {
        IGmxVault v = IGmxVault(vault);
        current = v.marginFeeBasisPoints();
        liquidation = current;
        if (!v.inPrivateLiquidationMode()) return (liquidation, current);
        (bool ok, bytes memory ret) =
            v.gov().staticcall{gas: 50_000}(abi.encodeWithSelector(IGmxVault.marginFeeBasisPoints.selector));
        if (ok && ret.length >= 32) {
            uint256 bps = abi.decode(ret, (uint256));
            if (bps <= PERP_BASIS) liquidation = bps;
        }
    }

    function _positionFee(IGmxVault v, address account, address coll, address index, bool isLong, uint256 size)
        private
        view
        returns (uint256)
    {
        (uint256 bps, uint256 current) = liquidationMarginFeeBps(address(v));
        if (bps == current) return v.getPositionFee(account, coll, index, isLong, size);
        return size - Math.mulDiv(size, PERP_BASIS - bps, PERP_BASIS);
    }
}
