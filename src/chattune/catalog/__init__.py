"""chattune.catalog"""
