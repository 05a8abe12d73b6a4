"""Benchmark: switchover migrate vs mbsync on the same corpora and the same Dovecot (`make bench`)."""
