"""The migration facet: folder planning, the copy, quotas, verify."""
