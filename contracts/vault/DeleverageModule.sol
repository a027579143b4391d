// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {IMorpho, Id, MarketParams} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";
import {IUniswapV3Pool} from "@uniswap/v3-core/contracts/interfaces/IUniswapV3Pool.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {IGmxPositionRouter} from "../interfaces/IGmxPositionRouter.sol";
import {IGmxRouter} from "../interfaces/IGmxRouter.sol";
import {IGmxVault} from "../interfaces/IGmxVault.sol";
import {RollingCap} from "../lib/RollingCap.sol";
import {VaultLens} from "../VaultLens.sol";
import {VaultCore} from "./VaultCore.sol";

/// @title DeleverageModule - the KeeperVault's self-funded protection: repay a position's debt with
///        its own collateral, in one transaction, through flash liquidity and a Uniswap v3 pool.
/// @notice `deleverage` (keeper only) borrows the debt asset from an allow-listed flash source (Morpho
///         Blue `flashLoan`, no fee; Aave v3 `flashLoanSimple`; or a Uniswap v3 pool's `flash`, at the
///         pool's fee, never the pool the sale goes through), repays the position, withdraws
///         collateral into the vault, sells it in an allow-listed pool and pays the flash source back.
///         On chain, whatever the keeper asks:
///         - the position is the vault's or the owner's own, on an allow-listed market (both of an Aave
///           position's assets), and its health must rise (`HealthNotRaised`);
///         - the swap's minimum out is at least the Chainlink value of what is sold less the owner's
///           `maxSlippageBps` (`MinOutBelowBound`), and the swap must reach it (`SwapShort`): a pool
///           moved against the vault just before makes the call revert, it cannot sell cheap;
///         - only allow-listed pools and flash sources; a callback is taken only from the contract the
///           vault has just called, once, inside the keeper's own call (`UnexpectedCallback`);
///         - what is sold counts in per-asset caps per call and per rolling window (`setDeleverageCap`);
///         - the vault's own reserve pays nothing (`ReserveSpent`): the swap alone repays the flash
///           source; what the swap brings beyond it stays in the vault, the owner's. Tokens leave only
///           to the position's protocol, the flash source and the pool.
///         Nothing is configured by default: no source, no pool, no feed, slippage 0 (so no swap can
///         meet its bound) and caps 0.
///         `reducePerp` (keeper only) deleverages a GMX v1 position by reducing its size, its collateral
///         left in place: atomically while the GMX Vault's leverage is on (health must rise), else as a
///         PositionRouter decrease request of the vault's own position (size only, proceeds to the vault).
///         The size reduced counts in the caps set for the GMX Vault's address, in USD at 1e30.
/// @dev Runs only by DELEGATECALL from its KeeperVault (`NotDelegated` otherwise), on the vault's
///      storage (`VaultCore`).
contract DeleverageModule is VaultCore {
    using SafeERC20 for IERC20;

    enum FlashKind {
        NONE,
        MORPHO,
        AAVE,
        UNISWAP
    }

    /// @param ref the position (Aave or Morpho)
    /// @param debtAsset the asset repaid (a Morpho market's loan token; an allow-listed Aave asset)
    /// @param flashSource an allow-listed Morpho Blue, Aave v3 pool or Uniswap v3 pool (one that holds the debt
    ///        asset and is not `pool`) lending `repayAmount` for the call
    /// @param repayAmount debt repaid, in `debtAsset` units (Morpho: at most the position's debt)
    /// @param collateralAmount collateral withdrawn and sold
    /// @param pool an allow-listed Uniswap v3 pool of the two assets
    /// @param minOut the least `debtAsset` the sale must bring: at least `swapBound(...)`, and enough to
    ///        repay the flash source (its fee included), else the call reverts
    struct Deleverage {
        Ref ref;
        address debtAsset;
        address flashSource;
        uint256 repayAmount;
        uint256 collateralAmount;
        address pool;
        uint256 minOut;
    }

    /// @notice The most slippage below the Chainlink value an owner can accept (10%).
    uint256 public constant MAX_SLIPPAGE_BPS = 1_000;
    /// @dev Deleverage windows live beside the cap windows, under the epoch with this bit set.
    uint256 private constant DELEVERAGES = 1 << 254;
    uint160 private constant MIN_SQRT_RATIO = 4295128739; // Uniswap v3 TickMath bounds
    uint160 private constant MAX_SQRT_RATIO = 1461446703485210103287273052203988790139401097;

    address private immutable _self;

    // What one deleverage did, from its callbacks to its event.
    uint256 private transient _repaid;
    uint256 private transient _sold;
    uint256 private transient _bought;
    uint256 private transient _flashFee;
    uint256 private transient _payLimit;

    error NotDelegated();
    error InvalidFlashKind(uint8 kind);
    error FlashSourceNotAllowed(address source);
    error PoolNotAllowed(address pool);
    error PoolMismatch(address pool, address tokenA, address tokenB);
    error SlippageTooHigh(uint256 bps, uint256 maximum);
    error NoPriceFeed(address token);
    error BadPrice(address feed, int256 answer);
    error MinOutBelowBound(uint256 minOut, uint256 bound);
    error SwapShort(uint256 out, uint256 minOut);
    error SwapPaysTooMuch(uint256 pay, uint256 limit);
    error UnexpectedCallback(address caller);
    error CallbackMissing(address from);
    error ReserveSpent(address asset, uint256 before, uint256 afterwards);
    error FlashPoolIsSwapPool(address pool);
    error SizeExceeded(uint256 sizeDelta, uint256 size);

    event FlashSourceSet(address indexed source, uint8 kind);
    event SwapPoolSet(address indexed pool, bool allowed);
    event PriceFeedSet(address indexed token, address indexed feed, uint64 maxAge);
    event MaxSlippageSet(uint256 bps);
    event DeleverageCapSet(address indexed asset, uint256 perCall, uint256 perWindow);
    event Deleveraged(
        uint8 kind,
        address indexed protocol,
        bytes32 indexed market,
        address indexed account,
        address collateral,
        uint256 sold,
        address debtAsset,
        uint256 repaid,
        uint256 bought,
        uint256 flashFee,
        uint256 healthBefore,
        uint256 healthAfter
    );

    /// @notice A perp's size was reduced in place (leverage on): `received` (its realised profit share, or
    ///         all of it on a full close, less GMX's fees) came to the vault.
    event PerpReduced(address indexed protocol, bytes32 indexed market, address indexed account, uint256 sizeDelta,
        uint256 received, uint256 healthBefore, uint256 healthAfter);
    /// @notice A gated GMX reduction was requested: nothing has changed yet; executed, the size falls by
    ///         `sizeDelta` and what leaves comes to the vault.
    event PerpDecreaseRequested(bytes32 indexed requestKey, address indexed positionRouter, bytes32 indexed market,
        uint256 sizeDelta, uint256 executionFee, uint256 healthBefore);
    event PerpDecreaseSettled(bytes32 indexed requestKey, bool executed);

    modifier delegated() {
        if (address(this) == _self) revert NotDelegated();
        _;
    }

    constructor(VaultLens lens_) VaultCore(lens_) {
        _self = address(this);
    }

    // ------------------------------------------------------------------ owner (works while paused)

    /// @notice Allow (`kind` 1: Morpho Blue, 2: Aave v3 pool, 3: Uniswap v3 pool) or remove (0) a flash source.
    function setFlashSource(address source, uint8 kind) external delegated onlyOwner {
        if (source == address(0)) revert ZeroAddress();
        if (kind > uint8(FlashKind.UNISWAP)) revert InvalidFlashKind(kind);
        _flashSources[source] = kind;
        emit FlashSourceSet(source, kind);
    }

    function setSwapPool(address pool, bool allowed) external delegated onlyOwner {
        if (pool == address(0)) revert ZeroAddress();
        _swapPools[pool] = allowed;
        emit SwapPoolSet(pool, allowed);
    }

    /// @notice The Chainlink USD feed that prices `token` in swap bounds, and the oldest answer taken
    ///         (seconds). `feed` = address(0) removes it: no swap of or into `token` then.
    function setPriceFeed(address token, address feed, uint64 maxAge) external delegated onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        _priceFeeds[token] = PriceFeed(feed, maxAge);
        emit PriceFeedSet(token, feed, maxAge);
    }

    function setMaxSlippage(uint256 bps) external delegated onlyOwner {
        if (bps > MAX_SLIPPAGE_BPS) revert SlippageTooHigh(bps, MAX_SLIPPAGE_BPS);
        _maxSlippageBps = bps;
        emit MaxSlippageSet(bps);
    }

    /// @notice Caps on the collateral `asset` deleverage may sell, per call and per rolling window
    ///         (`capWindow`); 0 (the default): none. For perps `asset` is the GMX Vault and the caps
    ///         count the size `reducePerp` may take off, in USD at 1e30.
    function setDeleverageCap(address asset, uint256 perCall, uint256 perWindow) external delegated onlyOwner {
        _deleverageCaps[asset] = Cap(perCall, perWindow);
        emit DeleverageCapSet(asset, perCall, perWindow);
    }

    // ------------------------------------------------------------------ keeper

    /// @notice Repay `d.repayAmount` of the position's debt with its own collateral (see the contract's notice).
    function deleverage(Deleverage calldata d) external delegated nonReentrant onlyKeeper whenNotPaused {
        Ref calldata ref = d.ref;
        if (d.repayAmount == 0 || d.collateralAmount == 0) revert ZeroAmount();
        _checkRef(ref);
        if (ref.kind == uint8(Kind.PERP)) revert UnsupportedAction();
        address collateral = _collateralAsset(ref);
        _checkDebtAsset(ref, d.debtAsset);
        _checkPool(d.pool, collateral, d.debtAsset);
        uint8 source = _flashSources[d.flashSource];
        if (source == uint8(FlashKind.NONE)) revert FlashSourceNotAllowed(d.flashSource);
        uint256 perCall = _deleverageCaps[collateral].perCall; // again on what was sold, below
        if (d.collateralAmount > perCall) revert CapPerCallExceeded(collateral, d.collateralAmount, perCall);
        uint256 bound = _swapBound(collateral, d.debtAsset, d.collateralAmount);
        if (d.minOut < bound) revert MinOutBelowBound(d.minOut, bound);

        uint256 before = _health(ref);
        uint256 collateralBefore = IERC20(collateral).balanceOf(address(this));
        uint256 debtBefore = IERC20(d.debtAsset).balanceOf(address(this));
        _expectedCallback = d.flashSource;
        if (source == uint8(FlashKind.MORPHO)) {
            IMorpho(d.flashSource).flashLoan(d.debtAsset, d.repayAmount, abi.encode(d));
        } else if (source == uint8(FlashKind.AAVE)) {
            IPool(d.flashSource).flashLoanSimple(address(this), d.debtAsset, d.repayAmount, abi.encode(d), 0);
        } else {
            _uniswapFlash(d);
        }
        if (_expectedCallback != address(0)) revert CallbackMissing(d.flashSource);

        _checkKept(collateral, collateralBefore);
        _checkKept(d.debtAsset, debtBefore);
        uint256 sold = _sold;
        _consumeDeleverage(collateral, sold);
        uint256 afterH = _health(ref);
        if (afterH <= before) revert HealthNotRaised(before, afterH);
        emit Deleveraged(ref.kind, ref.protocol, ref.market, ref.account, collateral, sold, d.debtAsset, _repaid,
            _bought, _flashFee, before, afterH);
    }

    /// @notice Reduce a GMX v1 position's size by `sizeDelta` (USD, 1e30), its collateral left in place
    ///         (GMX takes its margin fee on `sizeDelta` and books the realised share of the PnL). While the
    ///         GMX Vault's leverage is on, at once: health must rise. Else (gated GMX, as in production) a
    ///         PositionRouter decrease request of the vault's own position: collateral delta 0, receiver
    ///         this vault, its execution fee checked as a top-up's; GMX's position keepers execute it.
    ///         No acceptable-price bound: a reduction realises, at GMX's own oracle price (which the
    ///         keeper cannot move), the PnL the position already carries, and a bound would make it fail in
    ///         the crash it is for. Never a size increase: GMX's decrease can only take size off.
    function reducePerp(Ref calldata ref, uint256 sizeDelta) external delegated nonReentrant onlyKeeper whenNotPaused {
        if (sizeDelta == 0) revert ZeroAmount();
        _checkRef(ref);
        if (ref.kind != uint8(Kind.PERP)) revert UnsupportedAction();
        PerpParams memory p = _perpParams(ref.market);
        IGmxVault gmx = IGmxVault(ref.protocol);
        gmx.updateCumulativeFundingRate(p.collateralToken, p.indexToken);
        (uint256 size,,,,,,,) = gmx.getPosition(ref.account, p.collateralToken, p.indexToken, p.isLong);
        if (sizeDelta > size) revert SizeExceeded(sizeDelta, size);
        _consumeDeleverage(ref.protocol, sizeDelta);
        uint256 before = _health(ref);
        if (!gmx.isLeverageEnabled()) return _requestDecrease(ref, p, sizeDelta, before);
        uint256 balance = IERC20(p.collateralToken).balanceOf(address(this));
        gmx.decreasePosition(ref.account, p.collateralToken, p.indexToken, 0, sizeDelta, p.isLong, address(this));
        uint256 received = IERC20(p.collateralToken).balanceOf(address(this)) - balance;
        uint256 afterH = _health(ref);
        if (afterH <= before) revert HealthNotRaised(before, afterH);
        emit PerpReduced(ref.protocol, ref.market, ref.account, sizeDelta, received, before, afterH);
    }

    /// @notice Execute this vault's own pending decrease request on `perpVault`'s route when GMX's
    ///         position keepers have not (GMX lets the request's account do it once its public delay has
    ///         passed); the execution fee comes back.
    function executePerpDecrease(address perpVault, bytes32 key) external delegated nonReentrant onlyKeeper whenNotPaused {
        _settleDecrease(perpVault, key, true);
    }

    /// @notice Cancel this vault's own pending decrease request (same rules); the fee comes back.
    function cancelPerpDecrease(address perpVault, bytes32 key) external delegated nonReentrant onlyKeeper whenNotPaused {
        _settleDecrease(perpVault, key, false);
    }

    // ------------------------------------------------------------------ callbacks

    /// @notice Morpho Blue's flash-loan callback: taken only inside `deleverage`, from its source.
    function onMorphoFlashLoan(uint256 assets, bytes calldata data) external delegated {
        _takeCallback();
        Deleverage memory d = abi.decode(data, (Deleverage));
        _flashFee = 0;
        _inside(d);
        IERC20(d.debtAsset).forceApprove(msg.sender, assets); // Morpho pulls it back on return
    }

    /// @notice Aave v3's `flashLoanSimple` callback: taken only inside `deleverage`, from its source,
    ///         for a loan this vault initiated.
    function executeOperation(address asset, uint256 amount, uint256 premium, address initiator, bytes calldata params)
        external
        delegated
        returns (bool)
    {
        _takeCallback();
        if (initiator != address(this)) revert UnexpectedCallback(initiator);
        Deleverage memory d = abi.decode(params, (Deleverage));
        if (asset != d.debtAsset) revert AssetMismatch(d.debtAsset, asset);
        _flashFee = premium;
        _inside(d);
        IERC20(asset).forceApprove(msg.sender, amount + premium); // the pool pulls it back on return
        return true;
    }

    /// @notice Uniswap v3's flash callback: taken only from the flash pool `deleverage` borrows from, once;
    ///         pays back the loan and the pool's fee.
    function uniswapV3FlashCallback(uint256 fee0, uint256 fee1, bytes calldata data) external delegated {
        _takeCallback();
        Deleverage memory d = abi.decode(data, (Deleverage));
        uint256 fee = d.debtAsset == IUniswapV3Pool(msg.sender).token0() ? fee0 : fee1;
        _flashFee = fee;
        _inside(d);
        IERC20(d.debtAsset).safeTransfer(msg.sender, d.repayAmount + fee); // the pool checks its balance on return
    }

    /// @notice Uniswap v3's swap callback: taken only from the pool `deleverage` is selling in, once;
    ///         pays at most what the sale offered.
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external delegated {
        _takeCallback();
        address tokenIn = abi.decode(data, (address));
        uint256 pay = SafeCast.toUint256(amount0Delta > 0 ? amount0Delta : amount1Delta);
        if (pay > _payLimit) revert SwapPaysTooMuch(pay, _payLimit);
        IERC20(tokenIn).safeTransfer(msg.sender, pay);
    }

    // ------------------------------------------------------------------ views

    function flashSourceKind(address source) external view returns (uint8) {
        return _flashSources[source];
    }

    function isSwapPool(address pool) external view returns (bool) {
        return _swapPools[pool];
    }

    function priceFeedOf(address token) external view returns (address feed, uint64 maxAge) {
        PriceFeed memory f = _priceFeeds[token];
        return (f.feed, f.maxAge);
    }

    function maxSlippageBps() external view returns (uint256) {
        return _maxSlippageBps;
    }

    function deleverageCap(address asset) external view returns (uint256 perCall, uint256 perWindow) {
        Cap memory c = _deleverageCaps[asset];
        return (c.perCall, c.perWindow);
    }

    /// @notice What deleverage has sold of `asset` in the rolling window ending now.
    function deleverageUsed(address asset) external view returns (uint256) {
        uint256 book = _epoch | DELEVERAGES;
        return RollingCap.used(_windows[book][asset], _spends[book][asset], capWindow);
    }

    /// @notice The least `minOut` the vault takes for selling `amountIn` of `tokenIn` for `tokenOut`:
    ///         their Chainlink value less `maxSlippageBps`, rounded up.
    function swapBound(address tokenIn, address tokenOut, uint256 amountIn) external view returns (uint256) {
        return _swapBound(tokenIn, tokenOut, amountIn);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Inside the flash loan: repay, withdraw the collateral, sell it.
    function _inside(Deleverage memory d) private {
        Ref memory ref = d.ref;
        address collateral;
        uint256 balance = IERC20(d.debtAsset).balanceOf(address(this));
        IERC20(d.debtAsset).forceApprove(ref.protocol, d.repayAmount);
        if (ref.kind == uint8(Kind.AAVE)) {
            collateral = _aaveAsset(ref.market);
            IPool(ref.protocol).repay(d.debtAsset, d.repayAmount, AAVE_VARIABLE_RATE, ref.account);
        } else {
            MarketParams memory params = IMorpho(ref.protocol).idToMarketParams(Id.wrap(ref.market));
            collateral = params.collateralToken;
            IMorpho(ref.protocol).repay(params, d.repayAmount, 0, ref.account, "");
        }
        IERC20(d.debtAsset).forceApprove(ref.protocol, 0);
        _repaid = balance - IERC20(d.debtAsset).balanceOf(address(this));
        uint256 received =
            _pullCollateral(ref.kind, ref.protocol, ref.market, ref.account, collateral, d.collateralAmount);
        if (received == 0) revert ZeroAmount();
        _sold = received;
        _bought = _swap(d.pool, collateral, d.debtAsset, received, d.minOut);
    }

    /// @dev The gated reduction: a decrease request of the vault's own position (see `reducePerp`).
    function _requestDecrease(Ref calldata ref, PerpParams memory p, uint256 sizeDelta, uint256 before) private {
        if (ref.account != address(this)) revert GatedOwnerPosition(ref.account);
        (address positionRouter, uint256 fee) = _perpRequestFee(ref.protocol);
        IGmxPositionRouter pr = IGmxPositionRouter(positionRouter);
        IGmxRouter(pr.router()).approvePlugin(positionRouter); // GMX's Router lets it decrease at execution
        address[] memory path = new address[](1);
        path[0] = p.collateralToken;
        bytes32 key = pr.createDecreasePosition{value: fee}(
            path, p.indexToken, 0, sizeDelta, p.isLong, address(this), p.isLong ? 0 : type(uint256).max, 0, fee,
            false, address(0)
        );
        emit PerpDecreaseRequested(key, positionRouter, ref.market, sizeDelta, fee, before);
    }

    function _settleDecrease(address perpVault, bytes32 key, bool execute_) private {
        address positionRouter = perpRoutes[perpVault].positionRouter;
        if (positionRouter == address(0)) revert NoPerpRoute(perpVault);
        IGmxPositionRouter pr = IGmxPositionRouter(positionRouter);
        (address account,,,,,,,,,,,,) = pr.decreasePositionRequests(key);
        if (account != address(this)) revert NotOwnRequest(key);
        bool done = execute_
            ? pr.executeDecreasePosition(key, payable(address(this)))
            : pr.cancelDecreasePosition(key, payable(address(this)));
        if (!done) revert RequestNotSettled(key);
        emit PerpDecreaseSettled(key, execute_);
    }

    /// @dev A Uniswap v3 flash loan of the debt asset from `d.flashSource`: a pool holding it, and not the
    ///      pool the sale goes through (that one is locked during its own flash).
    function _uniswapFlash(Deleverage calldata d) private {
        if (d.flashSource == d.pool) revert FlashPoolIsSwapPool(d.pool);
        IUniswapV3Pool flashPool = IUniswapV3Pool(d.flashSource);
        bool zero = flashPool.token0() == d.debtAsset;
        if (!zero && flashPool.token1() != d.debtAsset) revert AssetMismatch(d.debtAsset, flashPool.token1());
        flashPool.flash(address(this), zero ? d.repayAmount : 0, zero ? 0 : d.repayAmount, abi.encode(d));
    }

    /// @dev Exact-input sale of `amountIn` in `pool` (no price limit: `minOut` is the limit).
    function _swap(address pool, address tokenIn, address tokenOut, uint256 amountIn, uint256 minOut)
        private
        returns (uint256 out)
    {
        bool zeroForOne = tokenIn == IUniswapV3Pool(pool).token0();
        uint256 balance = IERC20(tokenOut).balanceOf(address(this));
        _expectedCallback = pool;
        _payLimit = amountIn;
        IUniswapV3Pool(pool).swap(
            address(this),
            zeroForOne,
            SafeCast.toInt256(amountIn),
            zeroForOne ? MIN_SQRT_RATIO + 1 : MAX_SQRT_RATIO - 1,
            abi.encode(tokenIn)
        );
        if (_expectedCallback != address(0)) revert CallbackMissing(pool);
        out = IERC20(tokenOut).balanceOf(address(this)) - balance;
        if (out < minOut) revert SwapShort(out, minOut);
    }

    function _takeCallback() private {
        if (msg.sender != _expectedCallback) revert UnexpectedCallback(msg.sender);
        _expectedCallback = address(0);
    }

    /// @dev Morpho: the market's loan token. Aave: an asset of the same pool the owner allow-listed.
    function _checkDebtAsset(Ref calldata ref, address debtAsset) private view {
        if (ref.kind == uint8(Kind.MORPHO)) {
            address loanToken = _morphoParams(ref).loanToken;
            if (debtAsset != loanToken) revert AssetMismatch(loanToken, debtAsset);
            return;
        }
        bytes32 market = bytes32(uint256(uint160(debtAsset)));
        if (!markets[ref.kind][ref.protocol][market].allowed) revert NotAllowed(ref.kind, ref.protocol, market);
    }

    function _checkPool(address pool, address tokenA, address tokenB) private view {
        if (!_swapPools[pool]) revert PoolNotAllowed(pool);
        address t0 = IUniswapV3Pool(pool).token0();
        address t1 = IUniswapV3Pool(pool).token1();
        if (!((t0 == tokenA && t1 == tokenB) || (t0 == tokenB && t1 == tokenA))) {
            revert PoolMismatch(pool, tokenA, tokenB);
        }
    }

    /// @dev The vault ends with at least the `asset` it had before: the sale alone repaid the flash source.
    function _checkKept(address asset, uint256 before) private view {
        uint256 afterwards = IERC20(asset).balanceOf(address(this));
        if (afterwards < before) revert ReserveSpent(asset, before, afterwards);
    }

    function _consumeDeleverage(address asset, uint256 amount) private {
        Cap memory cap = _deleverageCaps[asset];
        if (amount > cap.perCall) revert CapPerCallExceeded(asset, amount, cap.perCall);
        _record(_epoch | DELEVERAGES, asset, amount, cap.perWindow);
    }

    /// @dev value(amountIn) x (1 - slippage) in `tokenOut` units, from USD prices 1e18-scaled, rounded up.
    function _swapBound(address tokenIn, address tokenOut, uint256 amountIn) private view returns (uint256) {
        uint256 pIn = _usdPrice(tokenIn);
        uint256 pOut = _usdPrice(tokenOut);
        uint256 dIn = IERC20Metadata(tokenIn).decimals();
        uint256 dOut = IERC20Metadata(tokenOut).decimals();
        return Math.mulDiv(
            amountIn * 10 ** dOut, pIn * (10_000 - _maxSlippageBps), pOut * 10 ** dIn * 10_000, Math.Rounding.Ceil
        );
    }

    /// @dev The feed's answer, 1e18-scaled; refuses a missing feed, a non-positive answer, and an answer
    ///      older than the feed's maxAge or from the future.
    function _usdPrice(address token) private view returns (uint256) {
        PriceFeed memory f = _priceFeeds[token];
        if (f.feed == address(0)) revert NoPriceFeed(token);
        (, int256 answer,, uint256 updatedAt,) = AggregatorV3Interface(f.feed).latestRoundData();
        if (answer <= 0) revert BadPrice(f.feed, answer);
        if (updatedAt > block.timestamp || block.timestamp - updatedAt > f.maxAge) revert StalePrice(f.feed, updatedAt);
        uint256 dec = AggregatorV3Interface(f.feed).decimals();
        return dec <= 18 ? uint256(answer) * 10 ** (18 - dec) : uint256(answer) / 10 ** (dec - 18);
    }
}
