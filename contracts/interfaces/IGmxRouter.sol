// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IGmxRouter - the part of GMX v1's `core/Router.sol` that the KeeperVault uses.
/// @notice A plugin (a PositionRouter or PositionManager that GMX's governance added) may move an
///         account's tokens (`pluginTransfer`, within the ERC20 allowance the account gave this
///         Router) and change its positions only after the account called `approvePlugin(plugin)`.
interface IGmxRouter {
    function approvePlugin(address plugin) external;
}
