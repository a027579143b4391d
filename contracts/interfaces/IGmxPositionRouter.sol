// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IGmxPositionRouter - the part of GMX v1's `core/PositionRouter.sol` (increase requests)
///        that the KeeperVault uses, with GMX v1's own signatures.
/// @notice `createIncreasePosition` stores a request for `msg.sender` (always), pulls `amountIn` of
///         `path[0]` from it through GMX's Router (an approved plugin), and takes `executionFee` in
///         ether (`msg.value` must equal it and be at least `minExecutionFee`). A position keeper
///         executes it later, or the request's own account may execute or cancel it itself once
///         `minTimeDelayPublic` has passed; a cancel returns the collateral to the account. Both
///         pay the execution fee to `executionFeeReceiver`.
interface IGmxPositionRouter {
    function vault() external view returns (address);

    function router() external view returns (address);

    function minExecutionFee() external view returns (uint256);

    function createIncreasePosition(
        address[] memory path,
        address indexToken,
        uint256 amountIn,
        uint256 minOut,
        uint256 sizeDelta,
        bool isLong,
        uint256 acceptablePrice,
        uint256 executionFee,
        bytes32 referralCode,
        address callbackTarget
    ) external payable returns (bytes32);

    /// @notice A decrease request for `msg.sender`'s position: `sizeDelta` and `collateralDelta` in USD
    ///         (1e30); what leaves goes to `receiver` in `path[path.length - 1]`.
    function createDecreasePosition(
        address[] memory path,
        address indexToken,
        uint256 collateralDelta,
        uint256 sizeDelta,
        bool isLong,
        address receiver,
        uint256 acceptablePrice,
        uint256 minOut,
        uint256 executionFee,
        bool withdrawETH,
        address callbackTarget
    ) external payable returns (bytes32);

    function executeDecreasePosition(bytes32 key, address payable executionFeeReceiver) external returns (bool);

    function cancelDecreasePosition(bytes32 key, address payable executionFeeReceiver) external returns (bool);

    /// @notice The decrease request's public getter (its `path` left out); `account == address(0)`
    ///         once executed or cancelled.
    function decreasePositionRequests(bytes32 key)
        external
        view
        returns (
            address account,
            address indexToken,
            uint256 collateralDelta,
            uint256 sizeDelta,
            bool isLong,
            address receiver,
            uint256 acceptablePrice,
            uint256 minOut,
            uint256 executionFee,
            uint256 blockNumber,
            uint256 blockTime,
            bool withdrawETH,
            address callbackTarget
        );

    function executeIncreasePosition(bytes32 key, address payable executionFeeReceiver) external returns (bool);

    function cancelIncreasePosition(bytes32 key, address payable executionFeeReceiver) external returns (bool);

    /// @notice The public getter of the request struct: Solidity leaves out its `path` array
    ///         (read it with `getIncreasePositionRequestPath`). A deleted (executed or cancelled) or
    ///         unknown request has `account == address(0)`.
    function increasePositionRequests(bytes32 key)
        external
        view
        returns (
            address account,
            address indexToken,
            uint256 amountIn,
            uint256 minOut,
            uint256 sizeDelta,
            bool isLong,
            uint256 acceptablePrice,
            uint256 executionFee,
            uint256 blockNumber,
            uint256 blockTime,
            bool hasCollateralInETH,
            address callbackTarget
        );
}
