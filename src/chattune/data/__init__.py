"""chattune.data"""
