"""chattune.registry"""
