// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TestERC20} from "./TestERC20.sol";

/// @title TestWETH - the devnet's wrapped ether: WETH9's `deposit`/`withdraw` (1 token per wei,
///        18 decimals) on top of TestERC20's devnet-only mint.
/// @notice GMX v1's Router and PositionRouter wrap execution fees with `deposit` and unwrap them
///         with `withdraw` (`BasePositionManager._transferInETH` / `_transferOutETH...`), so the
///         token they are given as `weth` must do both. Minted tokens are not backed by ether:
///         `withdraw` pays out only ether that `deposit` brought in.
contract TestWETH is TestERC20 {
    event Deposit(address indexed account, uint256 amount);
    event Withdrawal(address indexed account, uint256 amount);

    error EthTransferFailed();

    constructor(uint256 devnetChainId_) TestERC20("Wrapped Ether (devnet)", "WETH", 18, devnetChainId_) {}

    receive() external payable {
        deposit();
    }

    function deposit() public payable {
        _mint(msg.sender, msg.value);
        emit Deposit(msg.sender, msg.value);
    }

    function withdraw(uint256 amount) external {
        _burn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert EthTransferFailed();
        emit Withdrawal(msg.sender, amount);
    }
}
