"""Mail as data: identities, templates."""
