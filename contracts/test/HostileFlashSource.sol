// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

interface IFlashBorrower {
    function onMorphoFlashLoan(uint256 assets, bytes calldata data) external;
}

/// @title HostileFlashSource - a flash lender with Morpho Blue's `flashLoan` interface that misbehaves
///        inside the loan, for tests of a KeeperVault whose owner allow-listed it: it lends real tokens
///        (minted to it by the test), then, by `mode`:
///        0 calls `payload` on the borrower before the callback (a re-entry), bubbling up its revert;
///        1 calls the borrower's callback twice; 2 never calls it back (nor takes the tokens
///        back); 3 behaves.
/// @notice Test-only. Anyone may set it.
contract HostileFlashSource {
    uint8 public mode;
    bytes public payload;

    function set(uint8 mode_, bytes calldata payload_) external {
        mode = mode_;
        payload = payload_;
    }

    function flashLoan(address token, uint256 assets, bytes calldata data) external {
        IERC20(token).transfer(msg.sender, assets);
        if (mode == 0) {
            (bool ok, bytes memory ret) = msg.sender.call(payload);
            if (!ok) {
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
        if (mode != 2) IFlashBorrower(msg.sender).onMorphoFlashLoan(assets, data);
        if (mode == 1) IFlashBorrower(msg.sender).onMorphoFlashLoan(assets, data);
        if (mode != 2) IERC20(token).transferFrom(msg.sender, address(this), assets);
    }
}
