// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {IMorpho, Id, MarketParams} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";

import {IGmxPositionRouter} from "../interfaces/IGmxPositionRouter.sol";
import {MAX_WINDOW_ENTRIES as CAP_WINDOW_ENTRIES, RollingCap} from "../lib/RollingCap.sol";
import {FeedAge, Listed, VaultLens} from "../VaultLens.sol";

/// @title VaultCore - what the KeeperVault and its DeleverageModule share: the types, the storage
///        layout, the errors and events, the access modifiers and the internal reads and checks.
/// @dev `KeeperVault` runs `DeleverageModule`'s code by DELEGATECALL (its fallback), so both must see
///      one storage layout: every state variable is declared here and only here, and neither
///      contract declares its own (transient variables take no storage slot). New variables go at
///      the end. Immutables live in each contract's code, so `lens` is set by both constructors.
abstract contract VaultCore is ReentrancyGuard {
    using SafeERC20 for IERC20;


    enum Kind {
        AAVE,
        MORPHO,
        PERP
    }

    enum ActionType {
        TOP_UP,
        REPAY,
        WITHDRAW_EXCESS,
        REBALANCE_OUT,
        REBALANCE_IN
    }

    struct Ref {
        uint8 kind;
        address protocol;
        bytes32 market;
        address account;
    }

    struct MarketRule {
        bool allowed;
        uint256 healthFloor;
    }

    struct PerpParams {
        address collateralToken;
        address indexToken;
        bool isLong;
    }

    struct PerpRoute {
        address positionRouter;
        uint256 maxExecutionFee;
    }

    struct Cap {
        uint256 perCall;
        uint256 perWindow;
    }

    uint256 public constant MAX_WINDOW_ENTRIES = CAP_WINDOW_ENTRIES;
    uint256 public constant MAX_CAP_WINDOW = 365 days;
    uint256 public constant MIN_HEALTH_FLOOR = 105e16;
    uint256 internal constant AAVE_VARIABLE_RATE = 2;
    /// @dev The release windows live beside the cap windows, under the epoch with this bit set.
    uint256 internal constant RELEASES = 1 << 255;

    struct PriceFeed {
        address feed;
        uint64 maxAge;
    }

    struct Call {
        address target;
        uint256 value;
        bytes data;
    }

    /// @notice The vault's read-only half (health, grants, feed freshness), created by this vault.
    VaultLens public immutable lens;

    address public owner;
    address public pendingOwner;
    address public keeper;
    bool public paused;
    uint256 public capWindow = 1 days;

    mapping(address asset => Cap) public caps;
    mapping(uint8 kind => mapping(address protocol => mapping(bytes32 market => MarketRule))) public markets;
    mapping(bytes32 market => PerpParams) public perpMarkets;
    mapping(address perpVault => PerpRoute) public perpRoutes;
    mapping(address asset => uint256) public minAction;
    /// @notice Per asset: what keeper releases may take out of positions per window (0: nothing).
    mapping(address asset => uint256) public releaseCaps;
    /// @notice Aave: an explicit floor per (pool, account), overriding the pool's highest asset floor.
    mapping(address pool => mapping(address account => uint256)) public accountFloors;
    Listed[] internal _listed;
    mapping(bytes32 listing => bool) internal _known;
    address[] internal _tokens;
    /// @notice The feeds of `setFeed` (a removed one stays with maxAge 0, and is skipped).
    FeedAge[] public feeds;
    /// @dev The cap windows are kept per keeper epoch; `setKeeper` moves to a new, empty one.
    uint256 internal _epoch;
    mapping(uint256 epoch => mapping(address asset => RollingCap.Window)) internal _windows;
    mapping(uint256 epoch => mapping(address asset => RollingCap.Spend[CAP_WINDOW_ENTRIES])) internal _spends;

    // Deleverage (`DeleverageModule`, which has the getters): the owner's allow-lists of flash sources
    // (FlashKind) and Uniswap v3 pools, the Chainlink feed per token that bounds a swap, the largest
    // slippage below that bound the owner accepts (basis points), and the per-asset caps on what is sold.
    mapping(address source => uint8 kind) internal _flashSources;
    mapping(address pool => bool allowed) internal _swapPools;
    mapping(address token => PriceFeed) internal _priceFeeds;
    uint256 internal _maxSlippageBps;
    mapping(address asset => Cap) internal _deleverageCaps;
    /// @dev The one contract whose callback the vault takes next: set just before the keeper's own call
    ///      to it (a flash source, a pool), cleared by that callback. Transient: nothing outlives the call.
    address internal transient _expectedCallback;

    error NotOwner();
    error NotPendingOwner();
    error NotKeeper();
    error IsPaused();
    error ZeroAddress();
    error ZeroAmount();
    error InvalidKind(uint8 kind);
    error InvalidMarket(uint8 kind, address protocol, bytes32 market);
    error FloorTooLow(uint256 floor);
    error InvalidCapWindow(uint256 window);
    error NotAllowed(uint8 kind, address protocol, bytes32 market);
    error NotOwnPosition(address account);
    error CapPerCallExceeded(address asset, uint256 amount, uint256 cap);
    error BelowHealthFloor(uint256 health, uint256 floor);
    error HealthNotRaised(uint256 healthBefore, uint256 healthAfter);
    error ActionTooSmall(address asset, uint256 amount, uint256 minimum);
    error AssetMismatch(address fromAsset, address toAsset);
    error UnsupportedAction();
    error EthTransferFailed();
    error NoPerpRoute(address perpVault);
    error InvalidRoute(address perpVault, address positionRouter);
    error GatedOwnerPosition(address account);
    error ExecutionFeeTooHigh(uint256 fee, uint256 cap);
    error InsufficientEth(uint256 fee, uint256 balance);
    error NotOwnRequest(bytes32 requestKey);
    error RequestNotSettled(bytes32 requestKey);
    error GrantOutstanding(address where);
    error StalePrice(address feed, uint256 updatedAt);

    event KeeperAction(
        uint8 indexed action,
        uint8 kind,
        address indexed protocol,
        bytes32 indexed market,
        address account,
        address asset,
        uint256 amount,
        uint256 healthBefore,
        uint256 healthAfter
    );
    event Deposited(address indexed token, uint256 amount);
    event Withdrawn(address indexed token, uint256 amount);
    event Executed(address indexed target, uint256 value, bytes4 selector);
    event KeeperSet(address indexed keeper);
    event Paused();
    event Unpaused();
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event CapWindowSet(uint256 window);
    event CapSet(address indexed asset, uint256 perCall, uint256 perWindow);
    event MinActionSet(address indexed asset, uint256 minimum);
    event ReleaseCapSet(address indexed asset, uint256 perWindow);
    event AccountFloorSet(address indexed pool, address indexed account, uint256 floor);
    event FeedSet(address indexed feed, uint256 maxAge);
    event MarketSet(uint8 indexed kind, address indexed protocol, bytes32 indexed market, bool allowed, uint256 healthFloor);
    event PerpMarketSet(bytes32 indexed market, address collateralToken, address indexToken, bool isLong);
    event PerpRouteSet(address indexed perpVault, address indexed positionRouter, uint256 maxExecutionFee);
    /// @notice A gated GMX top-up was requested: `amount` and the fee left the vault, nothing is in
    ///         the position yet (no KeeperAction). Executed, the position gets `amount` less GMX's
    ///         deposit fee on longs; cancelled, `amount` comes back here.
    event PerpIncreaseRequested(bytes32 indexed requestKey, address indexed positionRouter, bytes32 indexed market,
        address account, address asset, uint256 amount, uint256 executionFee, uint256 healthBefore);
    event PerpRequestSettled(bytes32 indexed requestKey, bool executed);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @dev Listed after `nonReentrant` on keeper functions, so a re-entrant call from any caller
    ///      fails with `ReentrancyGuardReentrantCall` before its sender is even looked at.
    modifier onlyKeeper() {
        if (msg.sender != keeper) revert NotKeeper();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert IsPaused();
        _;
    }

    constructor(VaultLens lens_) {
        lens = lens_;
    }

    // ------------------------------------------------------------------ shared internals

    /// @dev The execution fee of a request on `perpVault`'s trusted PositionRouter: checked against the
    ///      route's cap and the vault's ether, and counted in the caps of address(0).
    function _perpRequestFee(address perpVault) internal returns (address positionRouter, uint256 fee) {
        PerpRoute memory route = perpRoutes[perpVault];
        positionRouter = route.positionRouter;
        if (positionRouter == address(0)) revert NoPerpRoute(perpVault);
        fee = IGmxPositionRouter(positionRouter).minExecutionFee();
        if (fee > route.maxExecutionFee) revert ExecutionFeeTooHigh(fee, route.maxExecutionFee);
        if (fee > address(this).balance) revert InsufficientEth(fee, address(this).balance);
        _consume(address(0), fee);
    }

    function _checkRef(Ref calldata ref) internal view {
        if (!markets[ref.kind][ref.protocol][ref.market].allowed) revert NotAllowed(ref.kind, ref.protocol, ref.market);
        if (ref.account != address(this) && ref.account != owner) revert NotOwnPosition(ref.account);
    }

    /// @dev The asset a position takes as collateral (and gives back on withdrawal).
    function _collateralAsset(Ref calldata ref) internal view returns (address) {
        if (ref.kind == uint8(Kind.AAVE)) return _aaveAsset(ref.market);
        if (ref.kind == uint8(Kind.MORPHO)) return _morphoParams(ref).collateralToken;
        return _perpParams(ref.market).collateralToken;
    }

    function _aaveAsset(bytes32 market) internal pure returns (address) {
        return address(uint160(uint256(market)));
    }

    function _morphoParams(Ref calldata ref) internal view returns (MarketParams memory) {
        return IMorpho(ref.protocol).idToMarketParams(Id.wrap(ref.market));
    }

    function _perpParams(bytes32 market) internal view returns (PerpParams memory p) {
        p = perpMarkets[market];
        if (p.collateralToken == address(0)) revert InvalidMarket(uint8(Kind.PERP), address(0), market);
    }

    function _health(Ref calldata ref) internal view returns (uint256) {
        if (ref.kind == uint8(Kind.AAVE)) {
            (,,,,, uint256 hf) = IPool(ref.protocol).getUserAccountData(ref.account);
            return hf;
        }
        if (ref.kind == uint8(Kind.MORPHO)) return lens.morphoHealth(ref.protocol, ref.market, ref.account);
        if (ref.kind == uint8(Kind.PERP)) {
            PerpParams memory p = _perpParams(ref.market);
            return lens.perpHealth(ref.protocol, ref.account, p.collateralToken, p.indexToken, p.isLong);
        }
        revert InvalidKind(ref.kind);
    }

    /// @dev Checks `amount` of `asset` against the minimum and both caps and records it in the rolling window.
    function _consume(address asset, uint256 amount) internal {
        Cap memory cap = caps[asset];
        if (amount > cap.perCall) revert CapPerCallExceeded(asset, amount, cap.perCall);
        uint256 minimum = minAction[asset];
        if (amount < minimum) revert ActionTooSmall(asset, amount, minimum);
        _record(_epoch, asset, amount, cap.perWindow);
    }

    function _record(uint256 book, address asset, uint256 amount, uint256 perWindow) internal {
        RollingCap.record(_windows[book][asset], _spends[book][asset], asset, amount, perWindow, capWindow);
    }

    function _emit(ActionType action, Ref calldata ref, address asset, uint256 amount, uint256 before, uint256 afterH)
        internal
    {
        emit KeeperAction(
            uint8(action), ref.kind, ref.protocol, ref.market, ref.account, asset, amount, before, afterH
        );
    }

    /// @dev Takes `amount` of `asset` collateral out of an Aave or Morpho position into this vault
    ///      (an owner-held Aave position: the owner's aTokens, through their allowance, then redeemed);
    ///      returns what arrived. No floor and no window here: the callers check what they need.
    function _pullCollateral(uint8 kind, address protocol, bytes32 market, address account, address asset,
        uint256 amount) internal returns (uint256 received)
    {
        uint256 balance = IERC20(asset).balanceOf(address(this));
        if (kind == uint8(Kind.AAVE)) {
            uint256 toWithdraw = amount;
            if (account != address(this)) {
                // Owner-held: move the owner's aTokens here (Aave checks the owner's health on the
                // transfer), then redeem exactly what arrived.
                IERC20 aToken = IERC20(lens.aToken(protocol, asset));
                uint256 aBefore = aToken.balanceOf(address(this));
                aToken.safeTransferFrom(account, address(this), amount);
                toWithdraw = aToken.balanceOf(address(this)) - aBefore;
            }
            IPool(protocol).withdraw(asset, toWithdraw, address(this));
        } else {
            MarketParams memory params = IMorpho(protocol).idToMarketParams(Id.wrap(market));
            IMorpho(protocol).withdrawCollateral(params, amount, account, address(this));
        }
        received = IERC20(asset).balanceOf(address(this)) - balance;
    }
}
