// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice Test helper: stands for an Aave v3 pool whose revision the keeper does not know (a fork
/// or an upgrade it was not written for). It answers `POOL_REVISION()` with a chosen number and
/// forwards every other call, as a static call, to a real Aave pool, whose own code answers it.
contract PoolRevisionOverride {
    address public immutable target;
    uint256 public immutable fakeRevision;

    constructor(address target_, uint256 fakeRevision_) {
        target = target_;
        fakeRevision = fakeRevision_;
    }

    fallback(bytes calldata data) external returns (bytes memory) {
        if (msg.sig == bytes4(keccak256("POOL_REVISION()"))) return abi.encode(fakeRevision);
        (bool ok, bytes memory ret) = target.staticcall(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }
}
