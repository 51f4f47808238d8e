"""A local Azure Functions host for the Python v2 model: HTTP, Storage queue and timer triggers on Azurite.

The real host (Core Tools) cannot be installed offline, so this one reads the same function_app.py, host.json and
local.settings.json and applies the host's rules for routing, keys, queue retries and poison, and NCRONTAB timers.
"""
