// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken - a hostile ERC20 for tests: once armed, every `transfer` and
///        `transferFrom` first calls `target` with `payload` (e.g. a KeeperVault keeper function)
///        and bubbles up that call's revert, so a test sees exactly why the re-entry failed.
/// @notice Test-only. Anyone may mint and arm it.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public payload;
    bool private _inHook;
    /// @notice Number of re-entrant calls that succeeded (a guarded target keeps this at 0).
    uint256 public reentered;

    constructor() ERC20("Reentrant", "REENT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arm the hook; `target_ == address(0)` disarms it.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        _hook();
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _hook();
        return super.transferFrom(from, to, value);
    }

    function _hook() private {
        if (target == address(0) || _inHook) return;
        _inHook = true;
        (bool ok, bytes memory ret) = target.call(payload);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        reentered += 1;
        _inHook = false;
    }
}
