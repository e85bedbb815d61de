"""chattune.serving"""
