"""The transition period: the watch, arrivals, people, actions, auto-reply."""
