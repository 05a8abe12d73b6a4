"""Local backups and imports."""
