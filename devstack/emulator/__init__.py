"""A local emulator of the Azure control plane the broker calls: Machine Learning serverless endpoints and
Marketplace subscriptions, Microsoft.Authorization, App Service managed identity and Key Vault secrets.

Run it with `python -m devstack.emulator`; see README.md in this folder.
"""
