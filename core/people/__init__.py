"""People of the history: who they are (group, organisation, aliases), the language they write, and what the user chose for each (notify, group, language); the CSV round trip."""
