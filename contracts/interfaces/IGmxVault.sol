// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IGmxVault - the part of GMX v1's `core/Vault.sol` that the KeeperVault and HealthLib use,
///        with GMX v1's own signatures.
/// @notice USD amounts are 1e30-scaled; leverage and fees are in basis points of 10_000.
///         A caller other than `account` of `increasePosition` / `decreasePosition` must be GMX's
///         Router or a router `account` approved with `addRouter(caller)`. `increasePosition`
///         takes the collateral tokens already transferred to the Vault in the same transaction and
///         reverts ("Vault: leverage not enabled") while `isLeverageEnabled` is false.
interface IGmxVault {
    function increasePosition(
        address account,
        address collateralToken,
        address indexToken,
        uint256 sizeDelta,
        bool isLong
    ) external;

    function decreasePosition(
        address account,
        address collateralToken,
        address indexToken,
        uint256 collateralDelta,
        uint256 sizeDelta,
        bool isLong,
        address receiver
    ) external returns (uint256);

    /// @notice Permissionless: brings `cumulativeFundingRates(collateralToken)` up to the last whole
    ///         funding interval (what `liquidatePosition` does first).
    function updateCumulativeFundingRate(address collateralToken, address indexToken) external;

    /// @return size, collateral, averagePrice, entryFundingRate, reserveAmount, realisedPnl (absolute),
    ///         hasRealisedProfit, lastIncreasedTime
    function getPosition(address account, address collateralToken, address indexToken, bool isLong)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256, bool, uint256);

    function getDelta(address indexToken, uint256 size, uint256 averagePrice, bool isLong, uint256 lastIncreasedTime)
        external
        view
        returns (bool hasProfit, uint256 delta);

    function getFundingFee(
        address account,
        address collateralToken,
        address indexToken,
        bool isLong,
        uint256 size,
        uint256 entryFundingRate
    ) external view returns (uint256);

    function getPositionFee(address account, address collateralToken, address indexToken, bool isLong, uint256 sizeDelta)
        external
        view
        returns (uint256);

    function liquidationFeeUsd() external view returns (uint256);

    function maxLeverage() external view returns (uint256);

    function marginFeeBasisPoints() external view returns (uint256);

    function isLeverageEnabled() external view returns (bool);

    function inPrivateLiquidationMode() external view returns (bool);

    function gov() external view returns (address);

    /// @notice Whether `account` let `router` change its positions (`addRouter`).
    function approvedRouters(address account, address router) external view returns (bool);
}
