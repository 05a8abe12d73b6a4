"""The Textual dashboard: one face of the engine (see tui.app.run_dashboard)."""
