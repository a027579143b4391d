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

import {IPerpVault} from "../interfaces/IPerpVault.sol";

/// @title HealthLib - one health number per position kind, read from the protocol itself.
/// @notice Every value is 1e18-scaled and means the same thing for every kind: below 1e18 the
///         position can be liquidated, `type(uint256).max` when it has no debt (no perp size).
///         Internal functions only, so they are inlined into the vault (no library linking).
library HealthLib {
    using MathLib for uint256;
    using SharesMathLib for uint256;

    uint256 internal constant WAD = 1e18;
    uint256 internal constant NO_DEBT = type(uint256).max;
    /// @dev GMX v1's BASIS_POINTS_DIVISOR: `maxLeverage` is in basis points (10_000 = 1x).
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

    /// @notice GMX-v1-style perp: the tighter of the two liquidation conditions, as a ratio.
    ///         net = collateral - loss - (funding fee + closing fee);
    ///         health = min(net * maxLeverage / (size * 10_000), net / liquidationFeeUsd).
    ///         0 when the fees eat the remaining collateral, max when the position has no size.
    function perp(address vault, address account, address collateralToken, address indexToken, bool isLong)
        internal
        view
        returns (uint256)
    {
        IPerpVault pv = IPerpVault(vault);
        (uint256 size, uint256 collateral,, uint256 entryFundingRate,,,,) =
            pv.getPosition(account, collateralToken, indexToken, isLong);
        if (size == 0) return NO_DEBT;
        (bool hasProfit, uint256 delta) = pv.getPositionDelta(account, collateralToken, indexToken, isLong);
        uint256 remaining = collateral;
        if (!hasProfit) remaining = delta > collateral ? 0 : collateral - delta;
        uint256 marginFees = pv.getFundingFee(collateralToken, size, entryFundingRate) + pv.getPositionFee(size);
        if (remaining <= marginFees) return 0;
        uint256 net = remaining - marginFees;
        uint256 byLeverage = Math.mulDiv(net * WAD, pv.maxLeverage(), size * PERP_BASIS);
        uint256 liquidationFee = pv.liquidationFeeUsd();
        if (liquidationFee == 0) return byLeverage;
        uint256 byFee = Math.mulDiv(net, WAD, liquidationFee);
        return byLeverage < byFee ? byLeverage : byFee;
    }
}
