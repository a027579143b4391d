// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

/// @title PerpVault - isolated-margin perpetuals behind the GMX v1 `Vault` interface (a subset).
/// @notice Positions, fees, funding, average prices, reserves and liquidation states follow GMX v1's
///         Vault/VaultUtils semantics, so an adapter written against this contract also reads and
///         tops up positions on GMX v1 forks. USD values are 1e30 fixed point.
/// @dev Deviations from GMX v1, on purpose:
///      - Fees go to the pool (`poolAmounts`) instead of `feeReserves`: the pool pays profits and
///        receives losses and fees. Longs' collateral already sits in the pool, so their fees stay
///        there; shorts' fees are credited to the pool in collateral tokens (`usdToTokenMin`).
///        On a long decrease the pool loses exactly the tokens paid out (GMX: `usdOut`, fee included).
///      - `validateLiquidation`'s max-leverage check is `(remaining - marginFees) * maxLeverage <
///        size * 10000`; GMX v1 uses `remaining * maxLeverage`. Ours is slightly stricter, so a
///        health computed with it (keeper/risk/perp_math.py) is conservative on real GMX forks.
///      - Prices come straight from one Chainlink feed per token (answer scaled to 1e30): min ==
///        max, no spread, no AMM price, no staleness check. `getDelta` has no minProfitTime rule.
///      - No swaps, USDG, buffers, token weights, max global short sizes, gas-price limits,
///        global router, leverage switch or private liquidation mode: anyone may liquidate.
///      - Every revert is a named custom error (GMX v1 reverts with strings / error codes).
contract PerpVault is ReentrancyGuard {
    using SafeERC20 for IERC20;

    struct Position {
        uint256 size; // USD
        uint256 collateral; // USD
        uint256 averagePrice;
        uint256 entryFundingRate;
        uint256 reserveAmount; // collateral tokens
        int256 realisedPnl;
        uint256 lastIncreasedTime;
    }

    uint256 public constant BASIS_POINTS_DIVISOR = 10000;
    uint256 public constant FUNDING_RATE_PRECISION = 1000000;
    uint256 public constant PRICE_PRECISION = 10 ** 30;
    uint256 public constant MIN_LEVERAGE = 10000; // 1x
    uint256 public constant MAX_FEE_BASIS_POINTS = 500; // 5%
    uint256 public constant MAX_LIQUIDATION_FEE_USD = 100 * PRICE_PRECISION; // 100 USD
    uint256 public constant MIN_FUNDING_RATE_INTERVAL = 1 hours;
    uint256 public constant MAX_FUNDING_RATE_FACTOR = 10000; // 1%

    address public gov;
    uint256 public maxLeverage = 50 * 10000; // 50x
    uint256 public liquidationFeeUsd = 5 * PRICE_PRECISION;
    uint256 public marginFeeBasisPoints = 10; // 0.1%
    uint256 public fundingInterval = 1 hours;
    uint256 public fundingRateFactor = 100;
    uint256 public stableFundingRateFactor = 100;

    mapping(address => bool) public whitelistedTokens;
    mapping(address => uint256) public tokenDecimals;
    mapping(address => bool) public stableTokens;
    mapping(address => bool) public shortableTokens;
    mapping(address => address) public priceFeeds;
    mapping(address => uint256) public priceFeedDecimals;
    mapping(address => mapping(address => bool)) public approvedRouters;

    mapping(address => uint256) public tokenBalances;
    mapping(address => uint256) public poolAmounts;
    mapping(address => uint256) public reservedAmounts;
    /// @notice Sum of (size - collateral) of the long positions backed by a token (GMX v1).
    mapping(address => uint256) public guaranteedUsd;
    mapping(address => uint256) public globalShortSizes;
    mapping(address => uint256) public globalShortAveragePrices;
    mapping(address => uint256) public cumulativeFundingRates;
    mapping(address => uint256) public lastFundingTimes;
    mapping(bytes32 => Position) public positions;

    event IncreasePosition(bytes32 key, address account, address collateralToken, address indexToken,
        uint256 collateralDelta, uint256 sizeDelta, bool isLong, uint256 price, uint256 fee);
    event DecreasePosition(bytes32 key, address account, address collateralToken, address indexToken,
        uint256 collateralDelta, uint256 sizeDelta, bool isLong, uint256 price, uint256 fee);
    event LiquidatePosition(bytes32 key, address account, address collateralToken, address indexToken,
        bool isLong, uint256 size, uint256 collateral, uint256 reserveAmount, int256 realisedPnl, uint256 markPrice);
    event UpdatePosition(bytes32 key, uint256 size, uint256 collateral, uint256 averagePrice,
        uint256 entryFundingRate, uint256 reserveAmount, int256 realisedPnl, uint256 markPrice);
    event ClosePosition(bytes32 key, uint256 size, uint256 collateral, uint256 averagePrice,
        uint256 entryFundingRate, uint256 reserveAmount, int256 realisedPnl);
    event UpdateFundingRate(address token, uint256 fundingRate);
    event UpdatePnl(bytes32 key, bool hasProfit, uint256 delta);
    event CollectMarginFees(address token, uint256 feeUsd, uint256 feeTokens);
    event DirectPoolDeposit(address token, uint256 amount);

    // configuration and access
    error Forbidden(); error InvalidFee(); error InvalidMaxLeverage(); error InvalidFundingRate();
    error InvalidTokenConfig(); error RouterNotApproved(address account, address sender);
    // tokens and prices
    error TokenNotWhitelisted(address token); error LongCollateralNotIndex(); error LongCollateralIsStable();
    error ShortCollateralNotStable(); error ShortIndexIsStable(); error IndexNotShortable();
    error NoPriceFeed(address token); error InvalidPrice(address token, int256 answer); error InvalidAveragePrice();
    // pool accounting
    error InvalidAmountIn(); error PoolExceedsBalance(); error PoolAmountExceeded(); error ReserveExceedsPool();
    error InsufficientReserve();
    // positions
    error InsufficientCollateralForFees(); error InvalidPositionSize(); error EmptyPosition();
    error PositionSizeExceeded(); error PositionCollateralExceeded(); error InsufficientCollateral();
    error SizeLessThanCollateral(); error ZeroCollateral(); error PositionNotLiquidatable();
    // validateLiquidation(..., true), in GMX v1's order
    error LossesExceedCollateral(); error FeesExceedCollateral(); error LiquidationFeesExceedCollateral();
    error MaxLeverageExceeded();

    modifier onlyGov() {
        if (msg.sender != gov) revert Forbidden();
        _;
    }

    constructor() { gov = msg.sender; }

    // ------------------------------------------------------------------ governance

    function setGov(address _gov) external onlyGov { gov = _gov; }

    /// @notice Lists a token with its Chainlink USD feed (the feed's `decimals()` is read once, here).
    function setTokenConfig(
        address _token, uint256 _tokenDecimals, address _priceFeed, bool _isStable, bool _isShortable
    ) external onlyGov {
        if (_token == address(0) || _priceFeed == address(0) || _tokenDecimals > 30) revert InvalidTokenConfig();
        whitelistedTokens[_token] = true;
        tokenDecimals[_token] = _tokenDecimals;
        stableTokens[_token] = _isStable;
        shortableTokens[_token] = _isShortable;
        priceFeeds[_token] = _priceFeed;
        priceFeedDecimals[_token] = AggregatorV3Interface(_priceFeed).decimals();
    }

    function setFees(uint256 _liquidationFeeUsd, uint256 _marginFeeBasisPoints) external onlyGov {
        if (_marginFeeBasisPoints > MAX_FEE_BASIS_POINTS) revert InvalidFee();
        if (_liquidationFeeUsd > MAX_LIQUIDATION_FEE_USD) revert InvalidFee();
        liquidationFeeUsd = _liquidationFeeUsd;
        marginFeeBasisPoints = _marginFeeBasisPoints;
    }

    function setMaxLeverage(uint256 _maxLeverage) external onlyGov {
        if (_maxLeverage <= MIN_LEVERAGE) revert InvalidMaxLeverage();
        maxLeverage = _maxLeverage;
    }

    function setFundingRate(uint256 _fundingInterval, uint256 _fundingRateFactor, uint256 _stableFundingRateFactor)
        external onlyGov {
        if (_fundingInterval < MIN_FUNDING_RATE_INTERVAL || _fundingRateFactor > MAX_FUNDING_RATE_FACTOR
            || _stableFundingRateFactor > MAX_FUNDING_RATE_FACTOR) revert InvalidFundingRate();
        fundingInterval = _fundingInterval;
        fundingRateFactor = _fundingRateFactor;
        stableFundingRateFactor = _stableFundingRateFactor;
    }

    // ------------------------------------------------------------------ routers and liquidity

    /// @notice Lets `_router` increase and decrease the caller's positions (GMX v1 `_validateRouter`).
    function addRouter(address _router) external { approvedRouters[msg.sender][_router] = true; }
    function removeRouter(address _router) external { approvedRouters[msg.sender][_router] = false; }

    /// @notice Adds the tokens transferred in beforehand to the pool (anyone may call, as in GMX v1).
    function directPoolDeposit(address _token) external nonReentrant {
        if (!whitelistedTokens[_token]) revert TokenNotWhitelisted(_token);
        uint256 tokenAmount = _transferIn(_token);
        if (tokenAmount == 0) revert InvalidAmountIn();
        _increasePoolAmount(_token, tokenAmount);
        emit DirectPoolDeposit(_token, tokenAmount);
    }

    // ------------------------------------------------------------------ positions

    /// @notice Opens or increases a position; the collateral is whatever was transferred in since the
    ///         last accounting (GMX v1 `_transferIn`). `_sizeDelta == 0` only adds that collateral:
    ///         this is how a keeper tops up margin. Longs: collateral == index, not stable; shorts:
    ///         stable collateral, shortable index. Charges the position fee on `_sizeDelta` and the
    ///         funding fee on the current size, then requires `validateLiquidation(.., true)` to pass.
    function increasePosition(
        address _account, address _collateralToken, address _indexToken, uint256 _sizeDelta, bool _isLong
    ) external nonReentrant {
        _validateRouter(_account);
        _validateTokens(_collateralToken, _indexToken, _isLong);
        updateCumulativeFundingRate(_collateralToken, _indexToken);
        bytes32 key = getPositionKey(_account, _collateralToken, _indexToken, _isLong);
        Position storage position = positions[key];
        uint256 price = _isLong ? getMaxPrice(_indexToken) : getMinPrice(_indexToken);

        if (position.size == 0) position.averagePrice = price;
        if (position.size > 0 && _sizeDelta > 0) {
            position.averagePrice = getNextAveragePrice(_indexToken, position.size, position.averagePrice, _isLong,
                price, _sizeDelta, position.lastIncreasedTime);
        }
        uint256 fee = _collectMarginFees(_collateralToken, _sizeDelta, position.size, position.entryFundingRate);
        uint256 collateralDelta = _transferIn(_collateralToken);
        uint256 collateralDeltaUsd = tokenToUsdMin(_collateralToken, collateralDelta);
        position.collateral += collateralDeltaUsd;
        if (position.collateral < fee) revert InsufficientCollateralForFees();
        position.collateral -= fee;
        position.entryFundingRate = cumulativeFundingRates[_collateralToken];
        position.size += _sizeDelta;
        position.lastIncreasedTime = block.timestamp;
        if (position.size == 0) revert InvalidPositionSize();
        if (position.size < position.collateral) revert SizeLessThanCollateral(); // GMX v1 _validatePosition
        validateLiquidation(_account, _collateralToken, _indexToken, _isLong, true);

        // reserve tokens to pay profits on the position
        uint256 reserveDelta = usdToTokenMax(_collateralToken, _sizeDelta);
        position.reserveAmount += reserveDelta;
        _increaseReservedAmount(_collateralToken, reserveDelta);
        if (_isLong) {
            // guaranteedUsd = sum of (size - collateral); the fee left the collateral, not the pool
            guaranteedUsd[_collateralToken] = guaranteedUsd[_collateralToken] + _sizeDelta + fee - collateralDeltaUsd;
            // longs' collateral is part of the pool, and so their fee stays in it
            _increasePoolAmount(_collateralToken, collateralDelta);
        } else {
            // shorts' collateral is held apart from the pool: move the fee into it
            _increasePoolAmount(_collateralToken, usdToTokenMin(_collateralToken, fee));
            globalShortAveragePrices[_indexToken] = globalShortSizes[_indexToken] == 0
                ? price
                : getNextGlobalShortAveragePrice(_indexToken, price, _sizeDelta);
            globalShortSizes[_indexToken] += _sizeDelta;
        }
        emit IncreasePosition(key, _account, _collateralToken, _indexToken, collateralDeltaUsd, _sizeDelta, _isLong,
            price, fee);
        emit UpdatePosition(key, position.size, position.collateral, position.averagePrice, position.entryFundingRate,
            position.reserveAmount, position.realisedPnl, price);
    }

    /// @notice Decreases a position by `_sizeDelta` (USD) and withdraws `_collateralDelta` (USD): PnL is
    ///         realised pro rata to `_sizeDelta`, fees are charged, and the result is paid to
    ///         `_receiver` in collateral tokens at the min price. Closes when the size reaches 0;
    ///         otherwise requires `validateLiquidation(.., true)` to pass afterwards.
    /// @return the collateral tokens sent to `_receiver`.
    function decreasePosition(
        address _account, address _collateralToken, address _indexToken, uint256 _collateralDelta,
        uint256 _sizeDelta, bool _isLong, address _receiver
    ) external nonReentrant returns (uint256) {
        _validateRouter(_account);
        return _decreasePosition(
            _account, _collateralToken, _indexToken, _collateralDelta, _sizeDelta, _isLong, _receiver);
    }

    /// @notice Liquidates a position that `validateLiquidation` does not call healthy; anyone may call.
    /// @dev State 1: the position is closed, `liquidationFeeUsd` in collateral tokens goes to
    ///      `_feeReceiver` out of the pool, the rest of the collateral (losses and fees) stays in the
    ///      pool. State 2 (over max leverage, but the collateral covers losses, fees and the
    ///      liquidation fee): as GMX v1 does, the whole position is closed through the ordinary
    ///      decrease path, the remaining collateral (after losses and fees) goes back to `_account`
    ///      and no liquidation fee is paid (GMX v1 does not partially decrease in state 2 either).
    function liquidatePosition(
        address _account, address _collateralToken, address _indexToken, bool _isLong, address _feeReceiver
    ) external nonReentrant {
        updateCumulativeFundingRate(_collateralToken, _indexToken);
        bytes32 key = getPositionKey(_account, _collateralToken, _indexToken, _isLong);
        Position memory position = positions[key];
        if (position.size == 0) revert EmptyPosition();
        (uint256 liquidationState, uint256 marginFees) =
            validateLiquidation(_account, _collateralToken, _indexToken, _isLong, false);
        if (liquidationState == 0) revert PositionNotLiquidatable();
        if (liquidationState == 2) {
            _decreasePosition(_account, _collateralToken, _indexToken, 0, position.size, _isLong, _account);
            return;
        }
        emit CollectMarginFees(_collateralToken, marginFees, usdToTokenMin(_collateralToken, marginFees));
        _decreaseReservedAmount(_collateralToken, position.reserveAmount);
        if (_isLong) guaranteedUsd[_collateralToken] -= position.size - position.collateral;
        uint256 markPrice = _isLong ? getMinPrice(_indexToken) : getMaxPrice(_indexToken);
        emit LiquidatePosition(key, _account, _collateralToken, _indexToken, _isLong, position.size,
            position.collateral, position.reserveAmount, position.realisedPnl, markPrice);
        if (!_isLong) {
            // a short's collateral was held apart: all of it (losses, fees, the rest) joins the pool
            _increasePoolAmount(_collateralToken, usdToTokenMin(_collateralToken, position.collateral));
            _decreaseGlobalShortSize(_indexToken, position.size);
        }
        delete positions[key];
        // the liquidator is paid from the pool
        uint256 feeTokens = usdToTokenMin(_collateralToken, liquidationFeeUsd);
        _decreasePoolAmount(_collateralToken, feeTokens);
        _transferOut(_collateralToken, feeTokens, _feeReceiver);
    }

    /// @notice Funding accrues per whole `fundingInterval` elapsed (GMX v1); the first call for a
    ///         token only sets `lastFundingTimes`, rounded down to the interval. Anyone may call.
    /// @dev `_indexToken` is unused, as in GMX v1 (it is there for the VaultUtils hook).
    function updateCumulativeFundingRate(address _collateralToken, address _indexToken) public {
        _indexToken;
        uint256 interval = fundingInterval;
        if (lastFundingTimes[_collateralToken] == 0) {
            lastFundingTimes[_collateralToken] = block.timestamp / interval * interval;
            return;
        }
        if (lastFundingTimes[_collateralToken] + interval > block.timestamp) return;
        cumulativeFundingRates[_collateralToken] += getNextFundingRate(_collateralToken);
        lastFundingTimes[_collateralToken] = block.timestamp / interval * interval;
        emit UpdateFundingRate(_collateralToken, cumulativeFundingRates[_collateralToken]);
    }

    // ------------------------------------------------------------------ views

    /// @notice GMX v1 `validateLiquidation`: 0 healthy, 1 liquidatable, 2 over max leverage; with
    ///         `_raise` it reverts with the named error instead of returning 1 or 2. `marginFees` is
    ///         the funding fee plus the closing fee on the whole size (capped at the remaining
    ///         collateral when it exceeds it). Profit is not added to the collateral. Reverts
    ///         `InvalidAveragePrice` for an empty position, as GMX v1 does.
    function validateLiquidation(
        address _account, address _collateralToken, address _indexToken, bool _isLong, bool _raise
    ) public view returns (uint256, uint256) {
        Position memory position = positions[getPositionKey(_account, _collateralToken, _indexToken, _isLong)];
        (bool hasProfit, uint256 delta) =
            getDelta(_indexToken, position.size, position.averagePrice, _isLong, position.lastIncreasedTime);
        uint256 marginFees =
            getFundingFee(_collateralToken, position.size, position.entryFundingRate) + getPositionFee(position.size);
        if (!hasProfit && position.collateral < delta) {
            if (_raise) revert LossesExceedCollateral();
            return (1, marginFees);
        }
        uint256 remainingCollateral = hasProfit ? position.collateral : position.collateral - delta;
        if (remainingCollateral < marginFees) {
            if (_raise) revert FeesExceedCollateral();
            return (1, remainingCollateral); // fees capped to the remaining collateral
        }
        if (remainingCollateral < marginFees + liquidationFeeUsd) {
            if (_raise) revert LiquidationFeesExceedCollateral();
            return (1, marginFees);
        }
        if ((remainingCollateral - marginFees) * maxLeverage < position.size * BASIS_POINTS_DIVISOR) {
            if (_raise) revert MaxLeverageExceeded();
            return (2, marginFees);
        }
        return (0, marginFees);
    }

    /// @return size, collateral, averagePrice, entryFundingRate, reserveAmount, realisedPnl (absolute),
    ///         hasRealisedProfit (realisedPnl >= 0), lastIncreasedTime - as GMX v1.
    function getPosition(address _account, address _collateralToken, address _indexToken, bool _isLong)
        public view returns (uint256, uint256, uint256, uint256, uint256, uint256, bool, uint256) {
        Position memory p = positions[getPositionKey(_account, _collateralToken, _indexToken, _isLong)];
        uint256 realisedPnl = p.realisedPnl > 0 ? uint256(p.realisedPnl) : uint256(-p.realisedPnl);
        return (p.size, p.collateral, p.averagePrice, p.entryFundingRate, p.reserveAmount, realisedPnl,
            p.realisedPnl >= 0, p.lastIncreasedTime);
    }

    function getPositionKey(address _account, address _collateralToken, address _indexToken, bool _isLong)
        public pure returns (bytes32) {
        return keccak256(abi.encodePacked(_account, _collateralToken, _indexToken, _isLong));
    }

    /// @notice `getDelta` of a stored position (reverts `InvalidAveragePrice` when there is none).
    function getPositionDelta(address _account, address _collateralToken, address _indexToken, bool _isLong)
        public view returns (bool, uint256) {
        Position memory p = positions[getPositionKey(_account, _collateralToken, _indexToken, _isLong)];
        return getDelta(_indexToken, p.size, p.averagePrice, _isLong, p.lastIncreasedTime);
    }

    /// @notice Leverage in basis points (size * 10000 / collateral).
    function getPositionLeverage(address _account, address _collateralToken, address _indexToken, bool _isLong)
        public view returns (uint256) {
        Position memory p = positions[getPositionKey(_account, _collateralToken, _indexToken, _isLong)];
        if (p.collateral == 0) revert ZeroCollateral();
        return p.size * BASIS_POINTS_DIVISOR / p.collateral;
    }

    /// @notice Unrealised PnL at the mark price (min for longs, max for shorts):
    ///         size * |price - averagePrice| / averagePrice.
    /// @dev Unlike GMX v1 there is no minProfitTime/minProfitBasisPoints rule: `_lastIncreasedTime`
    ///      is accepted for interface compatibility and ignored.
    function getDelta(
        address _indexToken, uint256 _size, uint256 _averagePrice, bool _isLong, uint256 _lastIncreasedTime
    ) public view returns (bool, uint256) {
        _lastIncreasedTime;
        if (_averagePrice == 0) revert InvalidAveragePrice();
        uint256 price = _isLong ? getMinPrice(_indexToken) : getMaxPrice(_indexToken);
        uint256 priceDelta = _averagePrice > price ? _averagePrice - price : price - _averagePrice;
        bool hasProfit = _isLong ? price > _averagePrice : _averagePrice > price;
        return (hasProfit, _size * priceDelta / _averagePrice);
    }

    /// @notice GMX v1: nextPrice * nextSize / divisor; divisor longs nextSize +/- delta on profit/loss,
    ///         shorts nextSize -/+ delta.
    function getNextAveragePrice(
        address _indexToken, uint256 _size, uint256 _averagePrice, bool _isLong, uint256 _nextPrice,
        uint256 _sizeDelta, uint256 _lastIncreasedTime
    ) public view returns (uint256) {
        (bool hasProfit, uint256 delta) = getDelta(_indexToken, _size, _averagePrice, _isLong, _lastIncreasedTime);
        uint256 nextSize = _size + _sizeDelta;
        uint256 divisor = hasProfit == _isLong ? nextSize + delta : nextSize - delta;
        return _nextPrice * nextSize / divisor;
    }

    function getNextGlobalShortAveragePrice(address _indexToken, uint256 _nextPrice, uint256 _sizeDelta)
        public view returns (uint256) {
        uint256 size = globalShortSizes[_indexToken];
        uint256 averagePrice = globalShortAveragePrices[_indexToken];
        uint256 priceDelta = averagePrice > _nextPrice ? averagePrice - _nextPrice : _nextPrice - averagePrice;
        uint256 delta = size * priceDelta / averagePrice;
        uint256 nextSize = size + _sizeDelta;
        uint256 divisor = averagePrice > _nextPrice ? nextSize - delta : nextSize + delta;
        return _nextPrice * nextSize / divisor;
    }

    /// @notice size * (cumulativeFundingRate - entryFundingRate) / FUNDING_RATE_PRECISION.
    function getFundingFee(address _collateralToken, uint256 _size, uint256 _entryFundingRate)
        public view returns (uint256) {
        if (_size == 0) return 0;
        uint256 fundingRate = cumulativeFundingRates[_collateralToken] - _entryFundingRate;
        return fundingRate == 0 ? 0 : _size * fundingRate / FUNDING_RATE_PRECISION;
    }

    /// @notice sizeDelta - floor(sizeDelta * (10000 - marginFeeBasisPoints) / 10000), i.e. rounded up.
    function getPositionFee(uint256 _sizeDelta) public view returns (uint256) {
        if (_sizeDelta == 0) return 0;
        return _sizeDelta - _sizeDelta * (BASIS_POINTS_DIVISOR - marginFeeBasisPoints) / BASIS_POINTS_DIVISOR;
    }

    /// @notice factor * reservedAmounts * whole intervals elapsed / poolAmounts (0 before one has).
    function getNextFundingRate(address _token) public view returns (uint256) {
        if (lastFundingTimes[_token] + fundingInterval > block.timestamp) return 0;
        uint256 intervals = (block.timestamp - lastFundingTimes[_token]) / fundingInterval;
        uint256 poolAmount = poolAmounts[_token];
        if (poolAmount == 0) return 0;
        uint256 factor = stableTokens[_token] ? stableFundingRateFactor : fundingRateFactor;
        return factor * reservedAmounts[_token] * intervals / poolAmount;
    }

    /// @notice The Chainlink answer scaled to 1e30; no spread, so min == max. Answers <= 0 revert.
    function getMinPrice(address _token) public view returns (uint256) { return _feedPrice(_token); }
    function getMaxPrice(address _token) public view returns (uint256) { return _feedPrice(_token); }

    function tokenToUsdMin(address _token, uint256 _tokenAmount) public view returns (uint256) {
        if (_tokenAmount == 0) return 0;
        return _tokenAmount * getMinPrice(_token) / (10 ** tokenDecimals[_token]);
    }

    function usdToTokenMax(address _token, uint256 _usdAmount) public view returns (uint256) {
        return _usdAmount == 0 ? 0 : usdToToken(_token, _usdAmount, getMinPrice(_token));
    }

    function usdToTokenMin(address _token, uint256 _usdAmount) public view returns (uint256) {
        return _usdAmount == 0 ? 0 : usdToToken(_token, _usdAmount, getMaxPrice(_token));
    }

    function usdToToken(address _token, uint256 _usdAmount, uint256 _price) public view returns (uint256) {
        return _usdAmount == 0 ? 0 : _usdAmount * (10 ** tokenDecimals[_token]) / _price;
    }

    // ------------------------------------------------------------------ internals

    function _decreasePosition(
        address _account, address _collateralToken, address _indexToken, uint256 _collateralDelta,
        uint256 _sizeDelta, bool _isLong, address _receiver
    ) private returns (uint256) {
        updateCumulativeFundingRate(_collateralToken, _indexToken);
        bytes32 key = getPositionKey(_account, _collateralToken, _indexToken, _isLong);
        Position storage position = positions[key];
        if (position.size == 0) revert EmptyPosition();
        if (position.size < _sizeDelta) revert PositionSizeExceeded();
        if (position.collateral < _collateralDelta) revert PositionCollateralExceeded();
        uint256 collateral = position.collateral;
        {
            uint256 reserveDelta = position.reserveAmount * _sizeDelta / position.size;
            position.reserveAmount -= reserveDelta;
            _decreaseReservedAmount(_collateralToken, reserveDelta);
        }
        (uint256 usdOut, uint256 usdOutAfterFee) =
            _reduceCollateral(key, position, _collateralToken, _indexToken, _collateralDelta, _sizeDelta, _isLong);
        uint256 price = _isLong ? getMinPrice(_indexToken) : getMaxPrice(_indexToken);
        emit DecreasePosition(key, _account, _collateralToken, _indexToken, _collateralDelta, _sizeDelta, _isLong,
            price, usdOut - usdOutAfterFee);
        if (position.size != _sizeDelta) {
            position.entryFundingRate = cumulativeFundingRates[_collateralToken];
            position.size -= _sizeDelta;
            if (position.size < position.collateral) revert SizeLessThanCollateral();
            validateLiquidation(_account, _collateralToken, _indexToken, _isLong, true);
            if (_isLong) {
                guaranteedUsd[_collateralToken] =
                    guaranteedUsd[_collateralToken] + collateral - position.collateral - _sizeDelta;
            }
            emit UpdatePosition(key, position.size, position.collateral, position.averagePrice,
                position.entryFundingRate, position.reserveAmount, position.realisedPnl, price);
        } else {
            if (_isLong) guaranteedUsd[_collateralToken] = guaranteedUsd[_collateralToken] + collateral - _sizeDelta;
            emit ClosePosition(key, position.size, position.collateral, position.averagePrice,
                position.entryFundingRate, position.reserveAmount, position.realisedPnl);
            delete positions[key];
        }
        if (!_isLong) _decreaseGlobalShortSize(_indexToken, _sizeDelta);
        if (usdOut == 0) return 0;
        uint256 amountOutAfterFees = usdToTokenMin(_collateralToken, usdOutAfterFee);
        // longs are paid out of the pool (their collateral is in it); shorts' profit already left it
        if (_isLong) _decreasePoolAmount(_collateralToken, amountOutAfterFees);
        _transferOut(_collateralToken, amountOutAfterFees, _receiver);
        return amountOutAfterFees;
    }

    /// @dev GMX v1 `_reduceCollateral`: realises PnL pro rata to `_sizeDelta`, takes `_collateralDelta`
    ///      (and all collateral when closing) out, and the fee from that payout when it covers it.
    function _reduceCollateral(
        bytes32 _key, Position storage position, address _collateralToken, address _indexToken,
        uint256 _collateralDelta, uint256 _sizeDelta, bool _isLong
    ) private returns (uint256 usdOut, uint256 usdOutAfterFee) {
        uint256 fee = _collectMarginFees(_collateralToken, _sizeDelta, position.size, position.entryFundingRate);
        (bool hasProfit, uint256 delta) =
            getDelta(_indexToken, position.size, position.averagePrice, _isLong, position.lastIncreasedTime);
        uint256 adjustedDelta = _sizeDelta * delta / position.size;
        if (hasProfit && adjustedDelta > 0) {
            usdOut = adjustedDelta;
            position.realisedPnl += int256(adjustedDelta);
            // shorts' profits are paid from the pool (a long's collateral and profit both are pool)
            if (!_isLong) _decreasePoolAmount(_collateralToken, usdToTokenMin(_collateralToken, adjustedDelta));
        }
        if (!hasProfit && adjustedDelta > 0) {
            if (position.collateral < adjustedDelta) revert InsufficientCollateral();
            position.collateral -= adjustedDelta;
            // shorts' realised losses join the pool (a long's collateral is already in it)
            if (!_isLong) _increasePoolAmount(_collateralToken, usdToTokenMin(_collateralToken, adjustedDelta));
            position.realisedPnl -= int256(adjustedDelta);
        }
        if (_collateralDelta > 0) {
            if (position.collateral < _collateralDelta) revert InsufficientCollateral();
            usdOut += _collateralDelta;
            position.collateral -= _collateralDelta;
        }
        if (position.size == _sizeDelta) {
            usdOut += position.collateral;
            position.collateral = 0;
        }
        usdOutAfterFee = usdOut;
        if (usdOut > fee) {
            usdOutAfterFee = usdOut - fee;
        } else {
            if (position.collateral < fee) revert InsufficientCollateral();
            position.collateral -= fee;
        }
        if (!_isLong) _increasePoolAmount(_collateralToken, usdToTokenMin(_collateralToken, fee));
        emit UpdatePnl(_key, hasProfit, adjustedDelta);
    }

    /// @dev Position fee on `_sizeDelta` plus funding fee on the current `_size` (GMX v1).
    function _collectMarginFees(address _collateralToken, uint256 _sizeDelta, uint256 _size, uint256 _entryFundingRate)
        private returns (uint256 feeUsd) {
        feeUsd = getPositionFee(_sizeDelta) + getFundingFee(_collateralToken, _size, _entryFundingRate);
        emit CollectMarginFees(_collateralToken, feeUsd, usdToTokenMin(_collateralToken, feeUsd));
    }

    function _feedPrice(address _token) private view returns (uint256) {
        address feed = priceFeeds[_token];
        if (feed == address(0)) revert NoPriceFeed(_token);
        (, int256 answer,,,) = AggregatorV3Interface(feed).latestRoundData();
        if (answer <= 0) revert InvalidPrice(_token, answer);
        return uint256(answer) * PRICE_PRECISION / (10 ** priceFeedDecimals[_token]);
    }

    function _validateRouter(address _account) private view {
        if (msg.sender == _account || approvedRouters[_account][msg.sender]) return;
        revert RouterNotApproved(_account, msg.sender);
    }

    function _validateTokens(address _collateralToken, address _indexToken, bool _isLong) private view {
        if (_isLong) {
            if (_collateralToken != _indexToken) revert LongCollateralNotIndex();
            if (!whitelistedTokens[_collateralToken]) revert TokenNotWhitelisted(_collateralToken);
            if (stableTokens[_collateralToken]) revert LongCollateralIsStable();
            return;
        }
        if (!whitelistedTokens[_collateralToken]) revert TokenNotWhitelisted(_collateralToken);
        if (!stableTokens[_collateralToken]) revert ShortCollateralNotStable();
        if (stableTokens[_indexToken]) revert ShortIndexIsStable();
        if (!shortableTokens[_indexToken]) revert IndexNotShortable();
    }

    function _transferIn(address _token) private returns (uint256) {
        uint256 prevBalance = tokenBalances[_token];
        tokenBalances[_token] = IERC20(_token).balanceOf(address(this));
        return tokenBalances[_token] - prevBalance;
    }
    function _transferOut(address _token, uint256 _amount, address _receiver) private {
        IERC20(_token).safeTransfer(_receiver, _amount);
        tokenBalances[_token] = IERC20(_token).balanceOf(address(this));
    }
    function _increasePoolAmount(address _token, uint256 _amount) private {
        poolAmounts[_token] += _amount;
        if (poolAmounts[_token] > IERC20(_token).balanceOf(address(this))) revert PoolExceedsBalance();
    }
    function _decreasePoolAmount(address _token, uint256 _amount) private {
        if (poolAmounts[_token] < _amount) revert PoolAmountExceeded();
        poolAmounts[_token] -= _amount;
        if (reservedAmounts[_token] > poolAmounts[_token]) revert ReserveExceedsPool();
    }
    function _increaseReservedAmount(address _token, uint256 _amount) private {
        reservedAmounts[_token] += _amount;
        if (reservedAmounts[_token] > poolAmounts[_token]) revert ReserveExceedsPool();
    }
    function _decreaseReservedAmount(address _token, uint256 _amount) private {
        if (reservedAmounts[_token] < _amount) revert InsufficientReserve();
        reservedAmounts[_token] -= _amount;
    }
    function _decreaseGlobalShortSize(address _token, uint256 _amount) private {
        uint256 size = globalShortSizes[_token];
        globalShortSizes[_token] = _amount > size ? 0 : size - _amount;
    }
}
