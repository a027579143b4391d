"""keeper.plan"""
