// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {ICreditDelegationToken} from "@aave/core-v3/contracts/interfaces/ICreditDelegationToken.sol";
import {DataTypes} from "@aave/core-v3/contracts/protocol/libraries/types/DataTypes.sol";
import {IMorpho, Id, MarketParams} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";
import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";

import {IGmxVault} from "./interfaces/IGmxVault.sol";
import {HealthLib} from "./lib/HealthLib.sol";

/// @dev An allow-listed market as the vault records it (`KeeperVault.listed`).
struct Listed {
    uint8 kind;
    address protocol;
    bytes32 market;
}

/// @dev A Chainlink feed whose answer must be at most `maxAge` seconds old for a keeper release.
struct FeedAge {
    address feed;
    uint64 maxAge;
}

/// @dev The part of the KeeperVault the lens reads back (a perp market's collateral token).
interface IPerpMarkets {
    function perpMarkets(bytes32 market) external view returns (address collateralToken, address indexToken, bool isLong);
}

/// @title VaultLens - the KeeperVault's read-only half, deployed by each vault in its constructor.
/// @notice Stateless views: Morpho and GMX health (`HealthLib`), the owner's grants to the vault, and
///         Chainlink feed freshness. They live here, called with STATICCALL, because the vault's own
///         code is near EIP-170's 24,576-byte limit; the vault trusts only the lens it created.
contract VaultLens {
    uint8 private constant AAVE = 0;
    uint8 private constant MORPHO = 1;

    /// @notice Whether (kind, protocol, market) names a market that exists, for the calling vault:
    ///         an Aave asset key (an address in the low 160 bits), a created Morpho market, or a perp
    ///         market the vault registered (`setPerpMarket`).
    function isMarket(uint8 kind, address protocol, bytes32 market) external view returns (bool) {
        if (kind == AAVE) return uint256(market) >> 160 == 0 && market != bytes32(0);
        if (kind == MORPHO) return IMorpho(protocol).market(Id.wrap(market)).lastUpdate != 0;
        (address collateral,,) = IPerpMarkets(msg.sender).perpMarkets(market);
        return collateral != address(0);
    }

    /// @notice Aave's aToken of `asset` on `pool`.
    function aToken(address pool, address asset) external view returns (address) {
        return IPool(pool).getReserveData(asset).aTokenAddress;
    }

    function morphoHealth(address morpho, bytes32 id, address account) external view returns (uint256) {
        return HealthLib.morpho(morpho, id, account);
    }

    function perpHealth(address vault, address account, address collateralToken, address indexToken, bool isLong)
        external
        view
        returns (uint256)
    {
        return HealthLib.perp(vault, account, collateralToken, indexToken, isLong);
    }

    /// @notice The first place where `owner` still lets `vault` move its funds, or address(0): an
    ///         ERC20 allowance on any of `tokens` or on a listed market's tokens (Aave: the asset, its
    ///         aToken, and credit delegation on its debt tokens; Morpho: loan and collateral tokens,
    ///         and `setAuthorization`; GMX v1: the collateral token and `addRouter`). Called by the
    ///         vault (`msg.sender`) before an ownership transfer: each of these would let the next
    ///         owner take the previous owner's funds through `execute`.
    function grantOf(address owner, Listed[] calldata listed, address[] calldata tokens)
        external
        view
        returns (address where)
    {
        address vault = msg.sender;
        for (uint256 i = 0; i < tokens.length; ++i) {
            if (_allows(tokens[i], owner, vault)) return tokens[i];
        }
        for (uint256 i = 0; i < listed.length; ++i) {
            where = _grantOn(listed[i], owner, vault);
            if (where != address(0)) return where;
        }
    }

    /// @notice The first feed whose latest answer is older than its `maxAge`, dated in the future
    ///         or not positive, with its `updatedAt`; (address(0), 0) when every one is fresh. A feed
    ///         that cannot be read counts as stale (updatedAt 0); one with maxAge 0 is not checked.
    function staleFeed(FeedAge[] calldata feeds) external view returns (address feed, uint256 updatedAt) {
        for (uint256 i = 0; i < feeds.length; ++i) {
            if (feeds[i].maxAge == 0) continue;
            feed = feeds[i].feed;
            try AggregatorV3Interface(feed).latestRoundData() returns (uint80, int256 answer, uint256, uint256 at, uint80) {
                if (answer > 0 && at <= block.timestamp && block.timestamp - at <= feeds[i].maxAge) continue;
                return (feed, at);
            } catch {
                return (feed, 0);
            }
        }
        return (address(0), 0);
    }

    function _grantOn(Listed calldata l, address owner, address vault) private view returns (address) {
        if (l.kind == AAVE) {
            address asset = address(uint160(uint256(l.market)));
            DataTypes.ReserveData memory r = IPool(l.protocol).getReserveData(asset);
            if (_allows(asset, owner, vault)) return asset;
            if (_allows(r.aTokenAddress, owner, vault)) return r.aTokenAddress;
            if (_delegates(r.variableDebtTokenAddress, owner, vault)) return r.variableDebtTokenAddress;
            if (_delegates(r.stableDebtTokenAddress, owner, vault)) return r.stableDebtTokenAddress;
        } else if (l.kind == MORPHO) {
            if (IMorpho(l.protocol).isAuthorized(owner, vault)) return l.protocol;
            MarketParams memory p = IMorpho(l.protocol).idToMarketParams(Id.wrap(l.market));
            if (_allows(p.loanToken, owner, vault)) return p.loanToken;
            if (_allows(p.collateralToken, owner, vault)) return p.collateralToken;
        } else {
            if (IGmxVault(l.protocol).approvedRouters(owner, vault)) return l.protocol;
            (address collateral,,) = IPerpMarkets(vault).perpMarkets(l.market);
            if (_allows(collateral, owner, vault)) return collateral;
        }
        return address(0);
    }

    function _allows(address token, address owner, address vault) private view returns (bool) {
        return token != address(0) && IERC20(token).allowance(owner, vault) != 0;
    }

    /// @dev Aave v3.2+ removed stable debt: its address is then 0, or a token without delegation.
    function _delegates(address debtToken, address owner, address vault) private view returns (bool) {
        if (debtToken == address(0)) return false;
        try ICreditDelegationToken(debtToken).borrowAllowance(owner, vault) returns (uint256 allowed) {
            return allowed != 0;
        } catch {
            return false;
        }
    }
}
