"""Deploying and calling contracts on a devnet from anvil's unlocked accounts.

Devnet only: transactions are sent with ``eth_sendTransaction`` from unlocked accounts, which a
real node refuses. The keeper's own transactions (stage 4) are signed locally."""

from __future__ import annotations

from collections.abc import Mapping

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, TxReceipt, Wei

from keeper.chain.contracts import Artifact
from keeper.errors import Reverted, TxFailed


class Deployer:
    def __init__(self, w3: Web3, sender: ChecksumAddress | str) -> None:
        self.w3 = w3
        self.sender = Web3.to_checksum_address(sender)

    def deploy(self, artifact: Artifact, *args: object, libraries: Mapping[str, str] | None = None,
               sender: str | None = None) -> Contract:
        code = artifact.linked_bytecode(dict(libraries or {})) if artifact.link_references else artifact.bytecode
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=code)
        frm = Web3.to_checksum_address(sender) if sender else self.sender
        try:
            tx_hash = factory.constructor(*args).transact({"from": frm})
        except (ContractLogicError, ContractCustomError) as e:
            raise Reverted(f"deploying {artifact.name} reverted: {e}", data=getattr(e, "data", None)) from e
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise TxFailed(f"deploying {artifact.name} failed in tx {tx_hash.hex()}")
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)

    def send(self, fn: ContractFunction, sender: str | None = None, value: int = 0) -> TxReceipt:
        """Send a contract call and wait for its receipt; a revert raises ``Reverted``."""
        frm = Web3.to_checksum_address(sender) if sender else self.sender
        tx: TxParams = {"from": frm}
        if value:
            tx["value"] = Wei(value)
        try:
            tx_hash = fn.transact(tx)
        except (ContractLogicError, ContractCustomError) as e:
            raise Reverted(f"{fn.fn_name} reverted: {e}", data=getattr(e, "data", None)) from e
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise TxFailed(f"{fn.fn_name} failed in tx {tx_hash.hex()}")
        return receipt

    def send_value(self, to: str, amount: int, sender: str | None = None) -> TxReceipt:
        """Send ``amount`` wei of ether to ``to`` and wait for the receipt."""
        frm = Web3.to_checksum_address(sender) if sender else self.sender
        tx_hash = self.w3.eth.send_transaction({"from": frm, "to": Web3.to_checksum_address(to), "value": Wei(amount)})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise TxFailed(f"sending {amount} wei to {to} failed in tx {tx_hash.hex()}")
        return receipt

    def at(self, address: str, artifact: Artifact) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)
