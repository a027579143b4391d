"""keeper.store"""
