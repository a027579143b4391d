// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IPool} from "@aave/core-v3/contracts/interfaces/IPool.sol";
import {IMorpho, MarketParams} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";

/// The devnet's TestERC20: anyone may mint on a devnet chain id.
interface IMintable {
    function mint(address to, uint256 amount) external;
}

/// @title Borrower - one benchmark user: a tiny contract that holds a real Aave v3 or Morpho Blue
///        position as its own address (supplies collateral, then borrows against it).
/// @notice Devnet benchmarking only (bench/read_scale.py). Deployed once as the implementation;
///         every user is an EIP-1167 minimal clone of it, so `factory` (an immutable in the
///         implementation's code) is the same for every clone and only the factory may open positions.
contract Borrower {
    address public immutable factory;

    error OnlyFactory();

    constructor() {
        factory = msg.sender;
    }

    modifier onlyFactory() {
        if (msg.sender != factory) revert OnlyFactory();
        _;
    }

    /// Supply `amount` (and optionally `amount2` of a second asset) to the Aave pool, then borrow
    /// `borrowAmount` of `debt` at the variable rate. The collateral must already be here.
    function openAave(IPool pool, address collateral, uint256 amount, address collateral2, uint256 amount2,
                      address debt, uint256 borrowAmount) external onlyFactory {
        IERC20(collateral).approve(address(pool), amount);
        pool.supply(collateral, amount, address(this), 0);
        if (amount2 != 0) {
            IERC20(collateral2).approve(address(pool), amount2);
            pool.supply(collateral2, amount2, address(this), 0);
        }
        if (borrowAmount != 0) pool.borrow(debt, borrowAmount, 2, 0, address(this));
    }

    /// Supply `amount` of the market's collateral to Morpho Blue, then borrow `borrowAmount`.
    function openMorpho(IMorpho morpho, MarketParams calldata params, uint256 amount, uint256 borrowAmount)
        external
        onlyFactory
    {
        IERC20(params.collateralToken).approve(address(morpho), amount);
        morpho.supplyCollateral(params, amount, address(this), "");
        if (borrowAmount != 0) morpho.borrow(params, borrowAmount, 0, address(this), address(this));
    }
}

/// @title BorrowerFactory - creates many benchmark borrowers per transaction.
/// @notice Each spawn call creates `n` Borrower clones, mints their collateral (TestERC20's open
///         devnet mint) and has each open its own position. Amounts vary with the user's index so
///         that health factors differ: a size multiple s = 1 + index % 5 and a borrow fraction drawn
///         from keccak256(index) between `borrowMin` and `borrowMax` per collateral unit.
contract BorrowerFactory {
    address public immutable implementation;
    address[] public aaveBorrowers;
    address[] public morphoBorrowers;

    event Spawned(uint8 indexed protocol, uint256 first, uint256 count);

    constructor() {
        implementation = address(new Borrower());
    }

    struct AaveSpec {
        IPool pool;
        address collateral; // minted to every borrower: s * collateralUnit
        uint256 collateralUnit;
        address collateral2; // minted to every third borrower: s * collateral2Unit (0 = never)
        uint256 collateral2Unit;
        address debt;
        uint256 borrowMin; // per unit of collateral, in debt base units
        uint256 borrowMax;
    }

    struct MorphoSpec {
        IMorpho morpho;
        MarketParams params;
        uint256 collateralUnit;
        uint256 borrowMin;
        uint256 borrowMax;
    }

    function _fraction(uint256 index, uint256 lo, uint256 hi) private pure returns (uint256) {
        uint256 r = uint256(keccak256(abi.encode(index))) % 1001;
        return lo + (hi - lo) * r / 1000;
    }

    function spawnAave(uint256 n, AaveSpec calldata spec) external {
        uint256 first = aaveBorrowers.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 k = first + i;
            uint256 s = 1 + k % 5;
            Borrower b = Borrower(Clones.clone(implementation));
            uint256 amount = s * spec.collateralUnit;
            uint256 amount2 = (spec.collateral2Unit != 0 && k % 3 == 0) ? s * spec.collateral2Unit : 0;
            IMintable(spec.collateral).mint(address(b), amount);
            if (amount2 != 0) IMintable(spec.collateral2).mint(address(b), amount2);
            b.openAave(spec.pool, spec.collateral, amount, spec.collateral2, amount2, spec.debt,
                       s * _fraction(k, spec.borrowMin, spec.borrowMax));
            aaveBorrowers.push(address(b));
        }
        emit Spawned(0, first, n);
    }

    function spawnMorpho(uint256 n, MorphoSpec calldata spec) external {
        uint256 first = morphoBorrowers.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 k = first + i;
            uint256 s = 1 + k % 5;
            Borrower b = Borrower(Clones.clone(implementation));
            uint256 amount = s * spec.collateralUnit;
            IMintable(spec.params.collateralToken).mint(address(b), amount);
            b.openMorpho(spec.morpho, spec.params, amount, s * _fraction(k, spec.borrowMin, spec.borrowMax));
            morphoBorrowers.push(address(b));
        }
        emit Spawned(1, first, n);
    }

    function aaveCount() external view returns (uint256) {
        return aaveBorrowers.length;
    }

    function morphoCount() external view returns (uint256) {
        return morphoBorrowers.length;
    }

    /// Borrower addresses [from, to) of one protocol (0 = Aave, 1 = Morpho).
    function borrowers(uint8 protocol, uint256 from, uint256 to) external view returns (address[] memory out) {
        address[] storage all = protocol == 0 ? aaveBorrowers : morphoBorrowers;
        if (to > all.length) to = all.length;
        if (from > to) from = to;
        out = new address[](to - from);
        for (uint256 i = from; i < to; ++i) out[i - from] = all[i];
    }
}
