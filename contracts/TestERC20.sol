// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestERC20 - an OpenZeppelin ERC20 with configurable decimals and a devnet-only mint.
/// @notice Anyone may mint, but only on a devnet chain id (31337 by default, or the id given at
///         deployment). On any other chain `mint` reverts, so a token deployed to an anvil fork of
///         a real chain by mistake cannot be inflated.
contract TestERC20 is ERC20 {
    uint8 private immutable _decimals;
    uint256 public immutable devnetChainId;

    error MintOnlyOnDevnet(uint256 chainId);

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint256 devnetChainId_)
        ERC20(name_, symbol_)
    {
        _decimals = decimals_;
        devnetChainId = devnetChainId_ == 0 ? 31337 : devnetChainId_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function mint(address to, uint256 amount) external {
        if (block.chainid != devnetChainId) revert MintOnlyOnDevnet(block.chainid);
        _mint(to, amount);
    }
}
