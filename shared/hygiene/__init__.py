"""Hygiene: a timed scan for unhealthy, failed, unmanaged and orphaned serverless endpoints and their secrets.

Rules are small registered classes (Cloud Custodian's filter pattern) evaluated over an inventory the scanner
collects; findings persist with first/last seen and resolution times, alert once when they open and once when they
resolve, and are remediated only as far as configuration allows (report by default, dry run by default).
"""
