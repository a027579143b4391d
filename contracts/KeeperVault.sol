// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {IMorpho} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";

import {IGmxPositionRouter} from "./interfaces/IGmxPositionRouter.sol";
import {IGmxVault} from "./interfaces/IGmxVault.sol";
import {GmxPerp} from "./lib/GmxPerp.sol";
import {RollingCap} from "./lib/RollingCap.sol";
import {DeleverageModule} from "./vault/DeleverageModule.sol";
import {VaultCore} from "./vault/VaultCore.sol";
import {FeedAge, Listed, VaultLens} from "./VaultLens.sol";

/// @title KeeperVault - the user's guarded smart account.
/// @notice Holds the user's reserve and (optionally) positions. The owner (an EOA or a multisig)
///         can do anything. The keeper's hot key can only move funds between the vault and the
///         vault's or the owner's own positions on allow-listed markets, within per-asset caps,
///         and never leave a position it withdraws from below the owner's health floor.
/// @dev A position is named by a `Ref`:
///      - AAVE:   protocol = Pool,   market = bytes32(uint256(uint160(asset)))
///      - MORPHO: protocol = Morpho, market = the Morpho market id
///      - PERP:   protocol = a GMX v1 Vault, market =
///                keccak256(abi.encode(collateralToken, indexToken, isLong)) (see `setPerpMarket`)
///      - account: address(this) for a vault-held position, `owner` for an owner-held one.
///      Health is 1e18-scaled for every kind (below 1e18 = liquidatable, max = no debt); see `HealthLib`
///      (Morpho and GMX health are read through the vault's own `VaultLens`, to keep this contract's
///      code under EIP-170's limit).
///
///      Floors: no keeper withdrawal may leave a position below its floor, and no floor is below
///      `MIN_HEALTH_FLOOR` (1.05): a floor F is the largest single adverse price move, 1 - 1/F, the
///      owner accepts between two oracle updates (4.8% at 1.05). A keeper that withdraws to the floor
///      just before an update larger than that CAN make the position liquidatable; a floor of 1.0
///      would let it do so with interest alone. Aave's health is per account, so its floor is too: the
///      owner's `setAccountFloor`, else the highest floor among the pool's allowed assets.
///      Releases (withdrawals and `rebalance`'s source) also count in a per-asset release window,
///      `setReleaseCap` (0, the default: the keeper cannot release that asset), and, when the owner
///      listed Chainlink feeds with `setFeed`, need every listed feed fresh in the same transaction.
///
///      GMX v1: withdrawals are `Vault.decreasePosition` (collateral only, to this vault), allowed at any
///      time. Top-ups are atomic `increasePosition(size 0)` while the Vault's leverage is enabled; with it
///      off (GMX's production set-up) they are PositionRouter requests for this vault's own positions only
///      (GMX makes every request for its sender), executed by GMX's position keepers or, after GMX's
///      public delay, by `executePerpRequest`. The execution fee is paid in ether from this vault, within
///      the owner's `setPerpRoute` cap and address(0)'s caps.
///
///      Caps use a true rolling window, not fixed buckets (`RollingCap`): at most `MAX_WINDOW_ENTRIES`
///      keeper actions per asset per window; one more reverts with `CapWindowFull` until the oldest expires.
///      `setKeeper` starts every window afresh (a stolen key's records cannot lock its successor out), and
///      `setMinAction` sets a per-asset minimum below which a keeper action reverts (`ActionTooSmall`): at
///      `perWindow / MAX_WINDOW_ENTRIES` or more, the value cap binds before dust can fill the ring.
///
///      Ownership moves in two steps, and neither step goes through while the owner still grants the
///      vault anything the vault knows of (`VaultLens.grantOf`): otherwise the next owner could take the
///      previous owner's funds through `execute`. `executeBatch` makes several owner calls atomic (GMX
///      v1 credits tokens sent to its Vault to whoever calls next: never send them in one call and use
///      them in another).
///
///      Post-conditions: a top-up or repay must raise the position's health (`HealthLib`) or revert with
///      `HealthNotRaised`; a withdrawal (`withdrawExcess`, `rebalance`'s source) must leave it at or above
///      the market's floor or revert with `BelowHealthFloor`.
contract KeeperVault is VaultCore {
    using SafeERC20 for IERC20;

    /// @notice The deleverage half of this vault (`DeleverageModule`), created by it: every call
    ///         whose selector this contract does not have runs that code on this vault's storage.
    address public immutable module;

    constructor(address owner_, address keeper_) VaultCore(new VaultLens()) {
        if (owner_ == address(0)) revert ZeroAddress();
        owner = owner_;
        keeper = keeper_;
        module = address(new DeleverageModule(lens));
        emit OwnershipTransferred(address(0), owner_);
        emit KeeperSet(keeper_);
    }

    receive() external payable {}

    /// @dev The module's functions (its owner settings, `deleverage` and the flash and swap callbacks)
    ///      run here by DELEGATECALL; each checks its own caller.
    fallback() external payable {
        address target = module;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ------------------------------------------------------------------ owner (works while paused)

    /// @notice Pull `amount` of `token` from the owner into the vault's reserve.
    function deposit(address token, uint256 amount) external onlyOwner {
        if (amount == 0) revert ZeroAmount();
        _noteToken(token);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(token, amount);
    }

    /// @notice Send `amount` of `token` (address(0) = ether) to the owner; type(uint256).max sends
    ///         the whole balance. Works while paused.
    function withdraw(address token, uint256 amount) external onlyOwner {
        if (token == address(0)) {
            if (amount == type(uint256).max) amount = address(this).balance;
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert EthTransferFailed();
        } else {
            if (amount == type(uint256).max) amount = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransfer(msg.sender, amount);
        }
        emit Withdrawn(token, amount);
    }

    /// @notice Arbitrary call from the vault (open/close positions, approvals, authorisations).
    function execute(address target, uint256 value, bytes calldata data)
        external
        payable
        onlyOwner
        returns (bytes memory result)
    {
        result = _call(target, value, data);
    }

    /// @notice Several calls from the vault in one transaction: all of them or none. Use it whenever
    ///         one call leaves tokens where another address could take them before the next call
    ///         (GMX v1: a transfer to the Vault and the `increasePosition` that credits it).
    function executeBatch(Call[] calldata calls) external payable onlyOwner returns (bytes[] memory results) {
        results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            results[i] = _call(calls[i].target, calls[i].value, calls[i].data);
        }
    }

    /// @notice Set (rotate) the keeper. Every asset's cap window starts empty again, count and value:
    ///         what a stolen key filled cannot lock the new keeper out (so, across a rotation, up to two
    ///         `perWindow`s may move within one window).
    function setKeeper(address keeper_) external onlyOwner {
        keeper = keeper_;
        ++_epoch;
        emit KeeperSet(keeper_);
    }

    function pause() external onlyOwner {
        paused = true;
        emit Paused();
    }

    function unpause() external onlyOwner {
        paused = false;
        emit Unpaused();
    }

    /// @notice First step of an ownership transfer; address(0) cancels a pending one.
    ///         Refused with `GrantOutstanding` while the owner still lets the vault move its funds (see
    ///         `VaultLens.grantOf`); `acceptOwnership` checks again.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner != address(0)) _checkNoGrants();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner || msg.sender == address(0)) revert NotPendingOwner();
        _checkNoGrants();
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    /// @notice Length of the rolling cap window in seconds (default 1 day). Takes effect at once for
    ///         the records still held; records already pruned under a shorter window stay gone.
    function setCapWindow(uint256 window) external onlyOwner {
        if (window == 0 || window > MAX_CAP_WINDOW) revert InvalidCapWindow(window);
        capWindow = window;
        emit CapWindowSet(window);
    }

    /// @notice Per-asset caps in the asset's base units. A zero (or unset) cap means the keeper
    ///         cannot move that asset at all.
    function setCap(address asset, uint256 perCall, uint256 perWindow) external onlyOwner {
        _noteToken(asset);
        caps[asset] = Cap(perCall, perWindow);
        emit CapSet(asset, perCall, perWindow);
    }

    /// @notice The smallest keeper action on `asset`, in its base units, as the caps count it (what a
    ///         repay spent, what a withdrawal received); below it the action reverts with
    ///         `ActionTooSmall`. 0 (the default) sets no minimum.
    function setMinAction(address asset, uint256 minimum) external onlyOwner {
        minAction[asset] = minimum;
        emit MinActionSet(asset, minimum);
    }

    /// @notice What keeper releases of `asset` (withdrawals, `rebalance`'s source) may take out of
    ///         positions per window, on top of the asset's caps. 0 (the default): no releases. Past
    ///         it a release reverts `CapPerWindowExceeded(asset, usedAfter, releaseCap)`.
    function setReleaseCap(address asset, uint256 perWindow) external onlyOwner {
        releaseCaps[asset] = perWindow;
        emit ReleaseCapSet(asset, perWindow);
    }

    /// @notice Aave's health is per account: the floor of every withdrawal from `account` on `pool`.
    ///         0 clears it (the pool's highest allowed asset floor applies), else at least
    ///         `MIN_HEALTH_FLOOR`.
    function setAccountFloor(address pool, address account, uint256 floor) external onlyOwner {
        if (floor != 0 && floor < MIN_HEALTH_FLOOR) revert FloorTooLow(floor);
        accountFloors[pool][account] = floor;
        emit AccountFloorSet(pool, account, floor);
    }

    /// @notice Require `feed` (a Chainlink aggregator) to have answered within `maxAge` seconds for
    ///         every keeper release and rebalance; 0 removes it. Not for top-ups or repays: a frozen
    ///         feed must not block protection.
    function setFeed(address feed, uint64 maxAge) external onlyOwner {
        if (feed == address(0)) revert ZeroAddress();
        uint256 i;
        while (i < feeds.length && feeds[i].feed != feed) ++i;
        if (i == feeds.length) feeds.push(FeedAge(feed, maxAge));
        else feeds[i].maxAge = maxAge;
        emit FeedSet(feed, maxAge);
    }

    /// @notice Allow or forbid keeper actions on (kind, protocol, market). An allowed market needs
    ///         a health floor of at least `MIN_HEALTH_FLOOR` (see the contract's notes on floors).
    function setMarket(uint8 kind, address protocol, bytes32 market, bool allowed, uint256 healthFloor)
        external
        onlyOwner
    {
        _setMarket(kind, protocol, market, allowed, healthFloor);
    }

    /// @notice Register a perp market's parameters and allow or forbid it.
    function setPerpMarket(
        address perpVault,
        address collateralToken,
        address indexToken,
        bool isLong,
        bool allowed,
        uint256 healthFloor
    ) external onlyOwner returns (bytes32 market) {
        if (collateralToken == address(0) || indexToken == address(0)) revert ZeroAddress();
        market = keccak256(abi.encode(collateralToken, indexToken, isLong));
        perpMarkets[market] = PerpParams(collateralToken, indexToken, isLong);
        emit PerpMarketSet(market, collateralToken, indexToken, isLong);
        _setMarket(uint8(Kind.PERP), perpVault, market, allowed, healthFloor);
    }

    /// @notice Trust `positionRouter` (a GMX v1 PositionRouter of `perpVault`) for top-up requests,
    ///         paying at most `maxExecutionFee` wei each; address(0) removes the route (the plugin
    ///         approval on GMX's Router stays: the owner may `execute` its `denyPlugin`).
    function setPerpRoute(address perpVault, address positionRouter, uint256 maxExecutionFee) external onlyOwner {
        if (perpVault == address(0)) revert ZeroAddress();
        if (positionRouter == address(0)) {
            delete perpRoutes[perpVault];
            maxExecutionFee = 0;
        } else {
            if (IGmxPositionRouter(positionRouter).vault() != perpVault) revert InvalidRoute(perpVault, positionRouter);
            perpRoutes[perpVault] = PerpRoute(positionRouter, maxExecutionFee);
        }
        emit PerpRouteSet(perpVault, positionRouter, maxExecutionFee);
    }

    function _setMarket(uint8 kind, address protocol, bytes32 market, bool allowed, uint256 healthFloor) internal {
        if (kind > uint8(Kind.PERP)) revert InvalidKind(kind);
        if (protocol == address(0)) revert ZeroAddress();
        if (allowed) {
            if (healthFloor < MIN_HEALTH_FLOOR) revert FloorTooLow(healthFloor);
            if (!lens.isMarket(kind, protocol, market)) revert InvalidMarket(kind, protocol, market);
        }
        markets[kind][protocol][market] = MarketRule(allowed, healthFloor);
        bytes32 listing = keccak256(abi.encode(kind, protocol, market));
        if (!_known[listing]) {
            _known[listing] = true;
            _listed.push(Listed(kind, protocol, market));
        }
        emit MarketSet(kind, protocol, market, allowed, healthFloor);
    }

    // ------------------------------------------------------------------ keeper

    /// @notice Add `amount` of the position's collateral asset from the reserve: Aave supply,
    ///         Morpho supplyCollateral, or GMX margin: atomic increasePosition(size 0) while the
    ///         Vault's leverage is enabled, else a PositionRouter request (vault-held positions
    ///         only; `PerpIncreaseRequested` instead of `KeeperAction`). `amount` counts in the
    ///         asset's caps either way, a request's execution fee in those of address(0).
    function topUp(Ref calldata ref, uint256 amount) external nonReentrant onlyKeeper whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        _checkRef(ref);
        address asset = _collateralAsset(ref);
        _consume(asset, amount);
        _topUp(ref, asset, amount, ActionType.TOP_UP);
    }

    /// @notice Repay debt from the reserve (Aave variable debt, Morpho loan). Whatever the
    ///         protocol does not take stays in the vault; the cap counts what was spent.
    function repay(Ref calldata ref, uint256 amount) external nonReentrant onlyKeeper whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        _checkRef(ref);
        if (ref.kind == uint8(Kind.PERP)) revert UnsupportedAction();
        uint256 before = _health(ref);
        address asset;
        if (ref.kind == uint8(Kind.AAVE)) asset = _aaveAsset(ref.market);
        else asset = _morphoParams(ref).loanToken;
        uint256 balance = IERC20(asset).balanceOf(address(this));
        IERC20(asset).forceApprove(ref.protocol, amount);
        if (ref.kind == uint8(Kind.AAVE)) {
            IPool(ref.protocol).repay(asset, amount, AAVE_VARIABLE_RATE, ref.account);
        } else {
            IMorpho(ref.protocol).repay(_morphoParams(ref), amount, 0, ref.account, "");
        }
        IERC20(asset).forceApprove(ref.protocol, 0);
        uint256 spent = balance - IERC20(asset).balanceOf(address(this));
        if (spent == 0) revert ZeroAmount();
        _consume(asset, spent);
        uint256 afterH = _health(ref);
        if (afterH <= before) revert HealthNotRaised(before, afterH);
        _emit(ActionType.REPAY, ref, asset, spent, before, afterH);
    }

    /// @notice Take collateral out of a position back into the vault (never anywhere else).
    ///         AAVE/MORPHO: `amount` in the asset's units. PERP: `amount` is the collateral delta in
    ///         USD (1e30); GMX also checks the rest at the Vault's current margin fee (5% at rest on
    ///         gated GMX). The cap counts the tokens actually received; the position must end at
    ///         or above the market's health floor.
    function withdrawExcess(Ref calldata ref, uint256 amount) external nonReentrant onlyKeeper whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        _checkRef(ref);
        (address asset, uint256 received, uint256 before, uint256 afterH) = _withdraw(ref, amount);
        _emit(ActionType.WITHDRAW_EXCESS, ref, asset, received, before, afterH);
    }

    /// @notice Withdraw excess from `from` (as `withdrawExcess`) and top up `to` with exactly the
    ///         tokens received. Both positions must take the same asset. The cap counts the moved
    ///         tokens once.
    function rebalance(Ref calldata from, uint256 amount, Ref calldata to) external nonReentrant onlyKeeper whenNotPaused {
        if (amount == 0) revert ZeroAmount();
        _checkRef(from);
        _checkRef(to);
        address asset = _collateralAsset(from);
        address toAsset = _collateralAsset(to);
        if (asset != toAsset) revert AssetMismatch(asset, toAsset);
        (, uint256 received, uint256 before, uint256 afterH) = _withdraw(from, amount);
        _emit(ActionType.REBALANCE_OUT, from, asset, received, before, afterH);
        _topUp(to, asset, received, ActionType.REBALANCE_IN);
    }

    /// @notice Execute a pending increase request of this vault's (its top-ups, or the owner's own
    ///         through `execute`) on `perpVault`'s route when GMX's position keepers have not: GMX
    ///         lets the request's account do it once its public delay has passed. The fee comes back.
    function executePerpRequest(address perpVault, bytes32 key) external nonReentrant onlyKeeper whenNotPaused {
        _settle(perpVault, key, true);
    }

    /// @notice Cancel this vault's own pending increase request (same rules): the collateral and
    ///         the execution fee come back to the vault.
    function cancelPerpRequest(address perpVault, bytes32 key) external nonReentrant onlyKeeper whenNotPaused {
        _settle(perpVault, key, false);
    }

    // ------------------------------------------------------------------ views

    /// @notice The position's health, 1e18-scaled; type(uint256).max when it has no debt. For a
    ///         perp, funding is as of the GMX Vault's last funding update (keeper actions update it
    ///         before reading).
    function health(Ref calldata ref) external view returns (uint256) {
        return _health(ref);
    }

    /// @notice What the keeper has moved of `asset` in the rolling window ending now.
    function windowUsed(address asset) external view returns (uint256) {
        return RollingCap.used(_windows[_epoch][asset], _spends[_epoch][asset], capWindow);
    }

    /// @notice What keeper releases have taken of `asset` in the rolling window ending now.
    function releaseUsed(address asset) external view returns (uint256) {
        uint256 book = _epoch | RELEASES;
        return RollingCap.used(_windows[book][asset], _spends[book][asset], capWindow);
    }

    /// @notice The floor a keeper withdrawal from `ref` must respect (0: not allowed).
    function floorOf(Ref calldata ref) external view returns (uint256) {
        return _floorOf(ref);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The market's floor; on Aave the account's (explicit, or the highest allowed asset floor
    ///      of the pool: Aave health is per account, whatever asset leaves).
    function _floorOf(Ref calldata ref) internal view returns (uint256 floor) {
        MarketRule memory rule = markets[ref.kind][ref.protocol][ref.market];
        if (!rule.allowed) return 0;
        if (ref.kind != uint8(Kind.AAVE)) return rule.healthFloor;
        floor = accountFloors[ref.protocol][ref.account];
        if (floor != 0) return floor;
        for (uint256 i = 0; i < _listed.length; ++i) {
            Listed memory l = _listed[i];
            if (l.kind != uint8(Kind.AAVE) || l.protocol != ref.protocol) continue;
            MarketRule memory r = markets[l.kind][l.protocol][l.market];
            if (r.allowed && r.healthFloor > floor) floor = r.healthFloor;
        }
    }

    function _checkNoGrants() internal view {
        address where = lens.grantOf(owner, _listed, _tokens);
        if (where != address(0)) revert GrantOutstanding(where);
    }

    function _noteToken(address token) internal {
        bytes32 listing = keccak256(abi.encode(token));
        if (token == address(0) || _known[listing]) return;
        _known[listing] = true;
        _tokens.push(token);
    }

    function _call(address target, uint256 value, bytes calldata data) internal returns (bytes memory result) {
        result = Address.functionCallWithValue(target, data, value);
        emit Executed(target, value, data.length >= 4 ? bytes4(data[:4]) : bytes4(0));
    }

    /// @dev Health must rise (`HealthNotRaised`), except for a gated perp request, see `_requestMargin`.
    function _topUp(Ref calldata ref, address asset, uint256 amount, ActionType action) internal {
        if (ref.kind == uint8(Kind.PERP)) _syncFunding(ref);
        uint256 before = _health(ref);
        if (ref.kind == uint8(Kind.AAVE)) {
            IERC20(asset).forceApprove(ref.protocol, amount);
            IPool(ref.protocol).supply(asset, amount, ref.account, 0);
            IERC20(asset).forceApprove(ref.protocol, 0);
        } else if (ref.kind == uint8(Kind.MORPHO)) {
            IERC20(asset).forceApprove(ref.protocol, amount);
            IMorpho(ref.protocol).supplyCollateral(_morphoParams(ref), amount, ref.account, "");
            IERC20(asset).forceApprove(ref.protocol, 0);
        } else {
            PerpParams memory p = _perpParams(ref.market);
            if (!IGmxVault(ref.protocol).isLeverageEnabled()) return _requestMargin(ref, p, amount, before);
            GmxPerp.increaseMargin(ref.protocol, ref.account, p.collateralToken, p.indexToken, p.isLong, amount);
        }
        uint256 afterH = _health(ref);
        if (afterH <= before) revert HealthNotRaised(before, afterH);
        _emit(action, ref, asset, amount, before, afterH);
    }

    /// @dev Withdraws into the vault, checks the feeds and the floor, and counts what arrived in the
    ///      asset's caps and release window; returns the asset and what arrived.
    function _withdraw(Ref calldata ref, uint256 amount)
        internal
        returns (address asset, uint256 received, uint256 before, uint256 afterH)
    {
        if (feeds.length != 0) {
            (address feed, uint256 updatedAt) = lens.staleFeed(feeds);
            if (feed != address(0)) revert StalePrice(feed, updatedAt);
        }
        if (ref.kind == uint8(Kind.PERP)) _syncFunding(ref);
        before = _health(ref);
        asset = _collateralAsset(ref);
        if (ref.kind == uint8(Kind.PERP)) {
            PerpParams memory p = _perpParams(ref.market);
            uint256 balance = IERC20(asset).balanceOf(address(this));
            IGmxVault(ref.protocol).decreasePosition(
                ref.account, p.collateralToken, p.indexToken, amount, 0, p.isLong, address(this)
            );
            received = IERC20(asset).balanceOf(address(this)) - balance;
        } else {
            received = _pullCollateral(ref.kind, ref.protocol, ref.market, ref.account, asset, amount);
        }
        if (received == 0) revert ZeroAmount();
        afterH = _health(ref);
        uint256 floor = _floorOf(ref);
        if (afterH < floor) revert BelowHealthFloor(afterH, floor);
        _consume(asset, received);
        _record(_epoch | RELEASES, asset, received, releaseCaps[asset]);
    }

    /// @dev GMX's funding up to date before a perp health read, as `liquidatePosition` has it.
    function _syncFunding(Ref calldata ref) internal {
        PerpParams memory p = _perpParams(ref.market);
        IGmxVault(ref.protocol).updateCumulativeFundingRate(p.collateralToken, p.indexToken);
    }

    /// @dev The gated top-up: a margin-only PositionRouter request for this vault's own position,
    ///      its execution fee checked against the route's cap and the ether caps.
    ///      No health post-condition here: the margin lands later, when GMX's position keeper (or
    ///      `executePerpRequest`) executes the request, outside this call, so health has not moved yet.
    ///      Nor at execution: GMX runs it without calling back into a check that could refuse it, and
    ///      `executePerpRequest` also serves the owner's own requests (which may grow a position). What
    ///      bounds the request instead: size 0 (margin only, never a larger position), this vault's own
    ///      position, the caps, and `healthBefore` in `PerpIncreaseRequested` for the record.
    function _requestMargin(Ref calldata ref, PerpParams memory p, uint256 amount, uint256 before) internal {
        if (ref.account != address(this)) revert GatedOwnerPosition(ref.account);
        (address positionRouter, uint256 fee) = _perpRequestFee(ref.protocol);
        bytes32 key = GmxPerp.requestMargin(positionRouter, p.collateralToken, p.indexToken, p.isLong, amount, fee);
        emit PerpIncreaseRequested(key, positionRouter, ref.market, ref.account, p.collateralToken, amount, fee, before);
    }

    function _settle(address perpVault, bytes32 key, bool execute_) internal {
        address positionRouter = perpRoutes[perpVault].positionRouter;
        if (positionRouter == address(0)) revert NoPerpRoute(perpVault);
        if (GmxPerp.requestAccount(positionRouter, key) != address(this)) revert NotOwnRequest(key);
        if (!GmxPerp.settle(positionRouter, key, execute_)) revert RequestNotSettled(key);
        emit PerpRequestSettled(key, execute_);
    }
}
