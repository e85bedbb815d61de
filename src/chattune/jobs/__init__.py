"""chattune.jobs"""
