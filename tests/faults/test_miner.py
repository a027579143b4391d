"""The fault tests' block producer (``keeper.demo.faultlab.Miner``) says what it did: the blocks it
mined, when the last one was, and a call in flight, so a test that times out waiting for blocks
tells a stuck node from a stopped miner."""

import time

from keeper.demo.faultlab import Miner
from tests.daemon.helpers import wait_for


def test_the_miner_counts_what_it_mines(w3, snapshot):
    miner = Miner(w3)
    start = w3.eth.block_number
    miner.start(0.05)
    try:
        wait_for(lambda: miner.mined >= 3, 30, "three blocks")
    finally:
        miner.stop()
    assert w3.eth.block_number - start == miner.mined >= 3
    report = miner.report()
    assert report.startswith(f"the miner had no failures ({miner.mined} block(s) mined, the last ")
    assert "in flight" not in report


def test_a_dead_node_is_recorded_not_counted():
    from web3 import Web3

    miner = Miner(Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 1})))
    miner.start(0.05)
    try:
        wait_for(lambda: miner.errors, 30, "a failed call")
    finally:
        miner.stop()
    time.sleep(0.1)
    assert miner.mined == 0 and "0 block(s) mined, the last never" in miner.report()
    assert "failed evm_mine call(s)" in miner.report()
