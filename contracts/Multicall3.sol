// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Multicall3 - the `aggregate3` subset of the canonical Multicall3 interface.
/// @notice Deployed on the devnet and then copied to the canonical address
///         0xcA11bde05977b3631167028862bE2a173976CA11 with `anvil_setCode`, so the same batching
///         code reads a devnet and a fork of a real chain. Only view-style batching is needed by the
///         keeper, so there is no value forwarding.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    error CallFailed(uint256 index, bytes returnData);

    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        uint256 n = calls.length;
        results = new Result[](n);
        for (uint256 i = 0; i < n; ++i) {
            Call3 calldata c = calls[i];
            (bool ok, bytes memory data) = c.target.call(c.callData);
            if (!ok && !c.allowFailure) revert CallFailed(i, data);
            results[i] = Result(ok, data);
        }
    }

    function getBlockNumber() external view returns (uint256) {
        return block.number;
    }

    function getCurrentBlockTimestamp() external view returns (uint256) {
        return block.timestamp;
    }

    function getEthBalance(address account) external view returns (uint256) {
        return account.balance;
    }

    function getBasefee() external view returns (uint256 basefee) {
        basefee = block.basefee;
    }
}
