"""``keeper preliq plan|apply``: Morpho pre-liquidation for one position. ``plan`` proposes the
parameters from the risk model (``keeper.plan.preliq``); ``apply`` creates the PreLiquidation contract
with Morpho's factory (``chains.<name>.morpho_blue.preliq_factory``) and authorises it on the
borrower's position with the borrower's own key: the owner's address for an owner-held position, or
the vault owner's through ``KeeperVault.execute`` for a vault-held one. The keeper's hot key is never
used here: opting in lets anyone take part of the position at the agreed incentive, a decision for
the position's owner.

The PreLiquidation address is deterministic (the factory deploys with CREATE2, salt 0, over the
market id and the parameters): an existing one with the same parameters is reused, not created again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from keeper.app.manual import Session, find_any
from keeper.chain import contracts as C
from keeper.chain.keys import HotKey
from keeper.config import ChainConfig
from keeper.domain import Address, Position, Protocol, Side
from keeper.errors import ConfigError, Reverted, TxFailed
from keeper.plan.preliq import PreLiqProposal, propose
from keeper.protocols.morpho_blue import MorphoBlueAdapter


@dataclass(frozen=True)
class PreLiqTarget:
    position: Position
    vault: Address | None  # the KeeperVault acting for the position (None: watched only, its own address)
    market_id: str
    oracle: Address
    proposal: PreLiqProposal


def preliq_plan(session: Session, selector: str, labels: dict[Address, str] | None = None) -> PreLiqTarget:
    pos, book = find_any(session, selector, labels)
    if pos.protocol is not Protocol.MORPHO_BLUE:
        raise ConfigError(f"{selector}: pre-liquidation is for Morpho Blue positions "
                          f"(this one is {pos.protocol.value})")
    collateral = pos.legs_on(Side.COLLATERAL)
    if len(collateral) != 1 or not pos.legs_on(Side.DEBT):
        raise ConfigError(f"{selector}: no debt against its collateral: nothing to pre-liquidate")
    market = next((m for ad in session.reader.adapters if isinstance(ad, MorphoBlueAdapter) for m in ad.markets
                   if m.id.lower() == pos.market.lower()), None)
    if market is None:
        raise ConfigError(f"{selector}: market {pos.market} is not one the keeper reads")
    proposal = propose(pos, session.risk, session.policy, market.lltv / 10**18)
    return PreLiqTarget(pos, book.vault if book is not None else None, market.id, market.oracle, proposal)


def pre_liquidation_address(factory: str, morpho: str, market_id: str, params: tuple[int, int, int, int, int],
                            oracle: str) -> Address:
    """Where the factory puts the PreLiquidation of (market, parameters): CREATE2 with salt 0 over its
    creation code and constructor arguments."""
    args = encode(["address", "bytes32", "(uint256,uint256,uint256,uint256,uint256,address)"],
                  [Address(morpho), bytes.fromhex(market_id[2:]), (*params, Address(oracle))])
    init = bytes.fromhex(C.preliq("PreLiquidation").bytecode.removeprefix("0x")) + args
    digest = keccak(b"\xff" + bytes.fromhex(Address(factory)[2:]) + bytes(32) + keccak(init))
    return Address("0x" + digest[12:].hex())


def owner_send(w3: Web3, key: HotKey, fn: Any) -> str:
    """Send a contract call signed by ``key`` (EIP-1559, gas estimated with a 20 % margin) and wait for
    it; a revert is ``Reverted``, a mined failure ``TxFailed``."""
    sender = Web3.to_checksum_address(key.address)
    try:
        gas = int(fn.estimate_gas({"from": sender}) * 1.2)
    except (ContractLogicError, ContractCustomError) as e:
        raise Reverted(f"{fn.fn_name} would revert: {e}") from e
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tip = w3.to_wei(1, "gwei")
    tx = fn.build_transaction({"from": sender, "chainId": w3.eth.chain_id, "gas": gas, "value": 0,
                               "nonce": w3.eth.get_transaction_count(sender, "pending"),
                               "maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip})
    tx.pop("from", None)
    tx["type"] = 2
    tx["data"] = bytes.fromhex(str(tx["data"]).removeprefix("0x"))
    tx_hash = w3.eth.send_raw_transaction(key.sign_transaction(dict(tx)))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        raise TxFailed(f"{fn.fn_name} failed in {tx_hash.hex()}")
    return "0x" + bytes(tx_hash).hex()


def preliq_apply(w3: Web3, ccfg: ChainConfig, target: PreLiqTarget, owner: HotKey) -> dict[str, Any]:
    """Create (or reuse) the PreLiquidation and authorise it on the position, with ``owner``'s key;
    returns what was done (addresses and transaction hashes)."""
    morpho_cfg = ccfg.morpho_blue
    if morpho_cfg is None or morpho_cfg.preliq_factory is None:
        raise ConfigError("no Morpho pre-liquidation factory configured",
                          hint="set chains.<name>.morpho_blue.preliq_factory (the devnet's is filled in)")
    pos = target.position
    morpho, factory = Address(morpho_cfg.morpho), Address(morpho_cfg.preliq_factory)
    vault_held = target.vault is not None and pos.account == target.vault
    vault = (w3.eth.contract(address=Web3.to_checksum_address(target.vault), abi=C.ours("KeeperVault").abi)
             if target.vault is not None else None)
    expected = Address(vault.functions.owner().call()) if vault is not None and vault_held else pos.account
    if Address(owner.address) != expected:
        raise ConfigError(f"the key given is {owner.address}, but only {expected} can authorise on this position "
                          f"({'the vault owner' if vault_held else 'the borrower'})")
    params = target.proposal.params.as_wad()
    pre = pre_liquidation_address(factory, morpho, target.market_id, params, target.oracle)
    done: dict[str, Any] = {"pre_liquidation": pre, "params": params, "oracle": target.oracle, "txs": []}
    fac = w3.eth.contract(address=Web3.to_checksum_address(factory), abi=C.preliq("PreLiquidationFactory").abi)
    if len(w3.eth.get_code(Web3.to_checksum_address(pre))) == 0:
        call = fac.functions.createPreLiquidation(bytes.fromhex(target.market_id[2:]),
                                                  (*params, Web3.to_checksum_address(target.oracle)))
        done["txs"].append(("createPreLiquidation", owner_send(w3, owner, call)))
        done["created"] = True
    else:
        done["created"] = False
    mb = w3.eth.contract(address=Web3.to_checksum_address(morpho), abi=C.third_party("Morpho").abi)

    def authorised() -> bool:
        return bool(mb.functions.isAuthorized(Web3.to_checksum_address(pos.account),
                                              Web3.to_checksum_address(pre)).call())

    if not authorised():  # Morpho refuses to set it again ("already set")
        auth = mb.functions.setAuthorization(Web3.to_checksum_address(pre), True)
        if vault is not None and vault_held:
            data = mb.encode_abi("setAuthorization", args=[Web3.to_checksum_address(pre), True])
            auth = vault.functions.execute(Web3.to_checksum_address(morpho), 0, data)
        done["txs"].append(("setAuthorization", owner_send(w3, owner, auth)))
    if not authorised():
        raise ConfigError(f"{pre} is not authorised on {pos.account} after the transaction")
    return done
