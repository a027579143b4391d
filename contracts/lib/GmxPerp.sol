// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IGmxPositionRouter} from "../interfaces/IGmxPositionRouter.sol";
import {IGmxRouter} from "../interfaces/IGmxRouter.sol";
import {IGmxVault} from "../interfaces/IGmxVault.sol";

/// @title GmxPerp - the KeeperVault's GMX v1 position mechanics, with no policy of their own.
/// @notice The caller (the KeeperVault) has already checked the keeper, the allow-list, the caps
///         and the execution fee; these functions only make GMX v1's calls, always for the
///         calling contract's own request or on a position it may change. Internal functions
///         only, so they are inlined into the vault (no library linking).
library GmxPerp {
    using SafeERC20 for IERC20;

    /// @notice Adds `amount` of `collateralToken` already held here as margin, atomically: the
    ///         tokens go to the GMX Vault and `increasePosition(account, ..., sizeDelta 0)` takes
    ///         them in the same call. Needs the Vault's leverage to be enabled, and, for an
    ///         `account` other than this contract, `account` to have called `addRouter(this)`.
    function increaseMargin(
        address vault,
        address account,
        address collateralToken,
        address indexToken,
        bool isLong,
        uint256 amount
    ) internal {
        IERC20(collateralToken).safeTransfer(vault, amount);
        IGmxVault(vault).increasePosition(account, collateralToken, indexToken, 0, isLong);
    }

    /// @notice Asks `positionRouter` for a margin-only increase of this contract's own position:
    ///         path [collateralToken] (no swap), minOut 0, sizeDelta 0, no referral code, no
    ///         callback. With sizeDelta 0 the acceptable price is never binding, so the widest one
    ///         is given (max for a long, 0 for a short). GMX's Router may pull exactly `amount`:
    ///         the allowance is set for the call and reset to 0 after it. The PositionRouter is
    ///         (re-)approved as a plugin of this contract on GMX's Router: GMX needs that to pull the
    ///         tokens and, at execution, to increase the position.
    /// @return key the PositionRouter's request key
    function requestMargin(
        address positionRouter,
        address collateralToken,
        address indexToken,
        bool isLong,
        uint256 amount,
        uint256 executionFee
    ) internal returns (bytes32 key) {
        IGmxPositionRouter pr = IGmxPositionRouter(positionRouter);
        address router = pr.router();
        IERC20(collateralToken).forceApprove(router, amount);
        IGmxRouter(router).approvePlugin(positionRouter); // idempotent; as cheap as checking first
        address[] memory path = new address[](1);
        path[0] = collateralToken;
        key = pr.createIncreasePosition{value: executionFee}(
            path, indexToken, amount, 0, 0, isLong, isLong ? type(uint256).max : 0, executionFee, bytes32(0), address(0)
        );
        IERC20(collateralToken).forceApprove(router, 0);
    }

    /// @notice The account of an increase request (address(0) once executed or cancelled, or for
    ///         a key the PositionRouter never stored).
    function requestAccount(address positionRouter, bytes32 key) internal view returns (address account) {
        (account,,,,,,,,,,,) = IGmxPositionRouter(positionRouter).increasePositionRequests(key);
    }

    /// @notice Executes (or cancels) an increase request of this contract's as its own account:
    ///         GMX allows that once `minTimeDelayPublic` has passed since the request (reverting
    ///         "delay" before) and, for an execution, before `maxTimeDelay` ("expired"). The
    ///         execution fee is paid back to this contract; a cancel also returns the collateral.
    function settle(address positionRouter, bytes32 key, bool execute) internal returns (bool) {
        IGmxPositionRouter pr = IGmxPositionRouter(positionRouter);
        return execute
            ? pr.executeIncreasePosition(key, payable(address(this)))
            : pr.cancelIncreasePosition(key, payable(address(this)));
    }
}
