// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IPerpVault - the subset of the GMX v1 Vault interface that our PerpVault implements and
///        the KeeperVault uses.
/// @notice USD amounts are 1e30-scaled; leverage and fees are in basis points of 10_000.
///         Collateral is added by transferring collateral tokens to the vault and calling
///         `increasePosition(account, collateralToken, indexToken, 0, isLong)` in the same
///         transaction. A caller other than `account` must be an approved router of `account`
///         (`account` called `addRouter(caller)`).
interface IPerpVault {
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

    function getPosition(address account, address collateralToken, address indexToken, bool isLong)
        external
        view
        returns (
            uint256 size,
            uint256 collateral,
            uint256 averagePrice,
            uint256 entryFundingRate,
            uint256 reserveAmount,
            uint256 realisedPnl,
            bool hasRealisedProfit,
            uint256 lastIncreasedTime
        );

    function getPositionDelta(address account, address collateralToken, address indexToken, bool isLong)
        external
        view
        returns (bool hasProfit, uint256 delta);

    function getFundingFee(address collateralToken, uint256 size, uint256 entryFundingRate)
        external
        view
        returns (uint256);

    function getPositionFee(uint256 sizeDelta) external view returns (uint256);

    function liquidationFeeUsd() external view returns (uint256);

    function maxLeverage() external view returns (uint256);

    function validateLiquidation(
        address account,
        address collateralToken,
        address indexToken,
        bool isLong,
        bool raise
    ) external view returns (uint256 state, uint256 marginFees);

    function addRouter(address router) external;

    function approvedRouters(address account, address router) external view returns (bool);

    function getMinPrice(address token) external view returns (uint256);

    function usdToTokenMin(address token, uint256 usdAmount) external view returns (uint256);

    function tokenToUsdMin(address token, uint256 tokenAmount) external view returns (uint256);
}
