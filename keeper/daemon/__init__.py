"""keeper.daemon"""
