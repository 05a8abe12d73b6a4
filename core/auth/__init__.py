"""Signing in: OAuth2 (Microsoft device code, Google installed app) with tokens refreshed on every connect, and secrets in the OS keyring."""
