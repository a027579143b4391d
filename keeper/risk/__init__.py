"""keeper.risk"""
