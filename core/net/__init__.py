"""The network: IMAP connections, the raw pipelined wire, SMTP."""
