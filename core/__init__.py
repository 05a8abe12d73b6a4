"""switchover's engine: configuration, state, IMAP/SMTP work and the events it publishes.

Nothing in this package imports Textual or the dashboard; the CLI and the dashboard
drive the same engine through :class:`core.engine.Engine`.
"""
