"""Fixtures of the sign-in tests (defined in tests/support/servers_oauth2.py): the local
identity provider ``oauth``, a Dovecot checking tokens against it ``oauth_dovecot``, and a
file keyring ``test_keyring``."""

from tests.support.servers_oauth2 import oauth, oauth_dovecot, test_keyring  # noqa: F401
