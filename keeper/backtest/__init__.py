"""keeper.backtest"""
