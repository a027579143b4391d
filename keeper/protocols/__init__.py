"""keeper.protocols"""
