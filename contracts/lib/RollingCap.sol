// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @dev Records per asset in a window's ring (see `RollingCap`).
uint256 constant MAX_WINDOW_ENTRIES = 32;

/// @title RollingCap - a true rolling window of spends for one asset, as the KeeperVault caps it.
/// @notice A ring of at most `MAX_WINDOW_ENTRIES` (timestamp, amount) records plus their running sum.
///         `record` prunes records older than `window` from the head, checks the new sum against the
///         cap and appends (records of the same block are merged). A bucketed window would let a
///         keeper spend two caps back to back around a bucket edge; an unbounded list would let a
///         keeper make every later call more expensive. The bound means at most `MAX_WINDOW_ENTRIES`
///         records per window; one more reverts with `CapWindowFull` until the oldest expires.
///         Internal functions only, so they are inlined into the vault (no library linking).
library RollingCap {
    using SafeCast for uint256;

    struct Spend {
        uint64 at;
        uint192 amount;
    }

    struct Window {
        uint8 head;
        uint8 count;
        uint256 sum;
    }

    error CapPerWindowExceeded(address asset, uint256 usedAfter, uint256 cap);
    error CapWindowFull(address asset, uint256 retryAt);

    /// @notice Add `amount` of `asset` to its window (`w`, `ring`) of length `window` seconds, or
    ///         revert if that takes the window's sum above `perWindow` or the ring is full.
    function record(
        Window storage w,
        Spend[MAX_WINDOW_ENTRIES] storage ring,
        address asset,
        uint256 amount,
        uint256 perWindow,
        uint256 window
    ) internal {
        uint8 head = w.head;
        uint8 count = w.count;
        uint256 sum = w.sum;
        while (count > 0) {
            Spend memory oldest = ring[head];
            if (uint256(oldest.at) + window > block.timestamp) break;
            sum -= oldest.amount;
            delete ring[head];
            head = uint8((uint256(head) + 1) % MAX_WINDOW_ENTRIES);
            --count;
        }
        uint256 usedAfter = sum + amount;
        if (usedAfter > perWindow) revert CapPerWindowExceeded(asset, usedAfter, perWindow);
        uint256 last = (uint256(head) + count + MAX_WINDOW_ENTRIES - 1) % MAX_WINDOW_ENTRIES;
        if (count > 0 && ring[last].at == block.timestamp) {
            ring[last].amount = (uint256(ring[last].amount) + amount).toUint192();
        } else {
            if (count == MAX_WINDOW_ENTRIES) revert CapWindowFull(asset, uint256(ring[head].at) + window);
            ring[(uint256(head) + count) % MAX_WINDOW_ENTRIES] = Spend(uint64(block.timestamp), amount.toUint192());
            ++count;
        }
        w.head = head;
        w.count = count;
        w.sum = usedAfter;
    }

    /// @notice What the window holds that is younger than `window` seconds now.
    function used(Window memory w, Spend[MAX_WINDOW_ENTRIES] storage ring, uint256 window)
        internal
        view
        returns (uint256 total)
    {
        for (uint256 i = 0; i < w.count; ++i) {
            Spend memory s = ring[(w.head + i) % MAX_WINDOW_ENTRIES];
            if (uint256(s.at) + window > block.timestamp) total += s.amount;
        }
    }
}
