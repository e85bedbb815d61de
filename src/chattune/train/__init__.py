"""chattune.train"""
