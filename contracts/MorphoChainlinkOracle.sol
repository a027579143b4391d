// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title MorphoChainlinkOracle - Morpho Blue's `IOracle.price()` from Chainlink feeds.
/// @notice Answers the price of 1 unit of collateral token quoted in units of loan token, scaled
///         by 1e36 as Morpho Blue expects, the way Morpho's own Chainlink oracle scales a base feed
///         over a quote feed:
///             SCALE = 10^(36 + quoteTokenDecimals + quoteFeedDecimals - baseTokenDecimals - baseFeedDecimals)
///             price = SCALE * baseAnswer / quoteAnswer
///         With no quote feed (address 0) the quote answer is 1 with 0 decimals.
///         A non-positive answer reverts: Morpho must never value collateral at zero by mistake.
contract MorphoChainlinkOracle {
    AggregatorV3Interface public immutable BASE_FEED;
    AggregatorV3Interface public immutable QUOTE_FEED;
    uint256 public immutable SCALE_FACTOR;

    error NonPositiveAnswer(address feed, int256 answer);
    error BadDecimals();

    constructor(address baseFeed, address quoteFeed, uint8 baseTokenDecimals, uint8 quoteTokenDecimals) {
        BASE_FEED = AggregatorV3Interface(baseFeed);
        QUOTE_FEED = AggregatorV3Interface(quoteFeed);
        uint256 baseFeedDecimals = AggregatorV3Interface(baseFeed).decimals();
        uint256 quoteFeedDecimals = quoteFeed == address(0) ? 0 : AggregatorV3Interface(quoteFeed).decimals();
        uint256 up = 36 + uint256(quoteTokenDecimals) + quoteFeedDecimals;
        uint256 down = uint256(baseTokenDecimals) + baseFeedDecimals;
        if (up < down) revert BadDecimals();
        SCALE_FACTOR = 10 ** (up - down);
    }

    function price() external view returns (uint256) {
        uint256 base = _answer(BASE_FEED);
        uint256 quote = address(QUOTE_FEED) == address(0) ? 1 : _answer(QUOTE_FEED);
        return SCALE_FACTOR * base / quote;
    }

    function _answer(AggregatorV3Interface feed) private view returns (uint256) {
        (, int256 answer,,,) = feed.latestRoundData();
        if (answer <= 0) revert NonPositiveAnswer(address(feed), answer);
        return uint256(answer);
    }
}
