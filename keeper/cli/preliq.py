"""`keeper preliq plan|apply POSITION`: Morpho pre-liquidation for one position, a backstop that
works while the keeper is down. ``plan`` proposes the parameters from the risk model and explains
them; ``apply`` creates the PreLiquidation contract with Morpho's factory and authorises it on the
position, signed by the position's owner (``--owner-key-env``: the borrower, or the vault owner for a
vault-held position), never by the keeper's key."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from keeper.cli.args import add_model_inputs, vol_overrides
from keeper.cli.render import labels

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    pq = sub.add_parser("preliq", help="Morpho pre-liquidation for one position: plan the parameters, or apply them")
    pq.add_argument("mode", choices=("plan", "apply"), help="plan: propose and explain; apply: create and authorise")
    pq.add_argument("position", help="a Morpho Blue position's name as 'keeper status' shows it (e.g. bob-morpho)")
    pq.add_argument("--owner-key-env", default=None, metavar="VAR",
                    help="apply: the environment variable holding the position owner's key (the borrower's, or the "
                         "vault owner's for a vault-held position)")
    pq.add_argument("--chain", default=None)
    pq.add_argument("--json", action="store_true")
    add_model_inputs(pq)
    pq.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from web3 import Web3

    from keeper.app.manual import open_session
    from keeper.app.preliq import preliq_apply, preliq_plan
    from keeper.chain.keys import load_key
    from keeper.errors import ConfigError
    from keeper.names import position_names
    from keeper.views import console

    assert cfg is not None  # needs_config: main() loaded it
    if args.mode == "apply" and not args.owner_key_env:
        raise ConfigError("preliq apply needs --owner-key-env VAR: the position owner's key signs it, not the keeper's")
    session = open_session(cfg, args.chain, price_files=args.prices, vols=vol_overrides(args.vol))
    try:
        target = preliq_plan(session, args.position, labels(cfg))
    finally:
        session.close()
    name = position_names(session.snap.positions, labels(cfg)).get(target.position.key, target.position.key)
    prop = target.proposal
    p = prop.params
    doc = {"position": target.position.key, "name": name, "market": target.market_id, "oracle": target.oracle,
           "params": {"pre_lltv": p.pre_lltv, "pre_lcf1": p.pre_lcf1, "pre_lcf2": p.pre_lcf2, "pre_lif1": p.pre_lif1,
                      "pre_lif2": p.pre_lif2}, "params_wad": [str(x) for x in p.as_wad()],
           "lltv": prop.lltv, "ltv_now": prop.ltv_now, "p_now": prop.p_now, "why": prop.explain()}
    out = console()
    if not args.json:
        out.print(f"{name}: pre-liquidation parameters from the risk model ({session.risk.describe()})")
        out.print(f"    preLltv {p.pre_lltv:.4f}  preLCF {p.pre_lcf1:.4f} -> {p.pre_lcf2:.2f}  "
                  f"preLIF {p.pre_lif1:.4f} -> {p.pre_lif2:.4f}  oracle {target.oracle}")
        out.print(f"    why: {prop.explain()}")
    if args.mode == "apply":
        ccfg = cfg.chains[session.chain]
        w3 = Web3(Web3.HTTPProvider(ccfg.rpc_urls[0], request_kwargs={"timeout": 30}))
        owner = load_key(env_var=args.owner_key_env, chain_id=w3.eth.chain_id)
        done = preliq_apply(w3, ccfg, target, owner)
        doc["applied"] = {"pre_liquidation": done["pre_liquidation"], "created": done["created"],
                          "txs": [{"call": c, "tx": h} for c, h in done["txs"]]}
        if not args.json:
            what = "created" if done["created"] else "already there, reused"
            out.print(f"    PreLiquidation {done['pre_liquidation']} ({what}); authorised on {target.position.account}")
            for call, tx in done["txs"]:
                out.print(f"    {call}: {tx}")
    elif not args.json:
        out.print("plan only: 'keeper preliq apply' with the owner's key creates and authorises it")
    if args.json:
        print(json.dumps(doc, default=str))
    return 0
