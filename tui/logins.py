"""Passwords and refused logins in the dashboard (``Logins``, mixed into the app).

A secret the config does not supply is asked for at start in a masked prompt whose hint
names the reason (an unset ``password_env`` variable, a missing command). When a
mailbox refuses the login — a mistyped password — the app says so once and offers ``P``
(and the palette's "Enter the old/new password"): the prompt again, then the watch
reconnects at once with the new secret. Secrets stay in memory (``engine.set_secret``).
An ``auth: oauth2`` account has no password: a missing or refused sign-in opens the Sign
in dialog instead (tui/signin.py; the same ``P``, and the palette's "Sign in to …").
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from switchover.core.auth.oauth2 import has_sign_in
from switchover.core.events import ConnectionState

from .prompts import SecretPrompt
from .signin import SignInScreen

if TYPE_CHECKING:
    from switchover.core.engine import Engine

#: connection states the typed password can fix
PASSWORD_STATES = ("auth failed", "no password")


class Logins:
    """Expects the app's ``engine``, ``status``, ``_background``, ``_told_auth``,
    ``_start_background`` and ``_prove_logins``."""

    engine: "Engine | None"
    _background: bool
    _told_auth: set[str]

    async def _ask_secrets(self) -> bool:
        assert self.engine is not None
        complete = True
        for side in ("old", "new"):
            if self._signs_in(side) and not has_sign_in(self.engine.config.account(side)):
                await self.push_screen_wait(SignInScreen(self.engine.config.account(side)))
                continue        # signed in or not, the watch says what the server thinks
            if not self.engine.needs_secret(side):
                continue
            if not await self._ask_secret(side):
                complete = False
                self.status.set_connection(side, "no password")
                problem = self.secret_problem(side)
                self.status.set_note(f"{side}: {problem}" if problem
                                     else f"{side}: no password — P enters it")
                self.refresh_bindings()
        return complete

    def _signs_in(self, side: str) -> bool:
        assert self.engine is not None
        return self.engine.config.account(side).signs_in

    def secret_problem(self, side: str) -> str:
        """Why the config gives no secret for ``side`` (names an unset variable or a
        missing command), or ''."""
        assert self.engine is not None
        return self.engine.config.account(side).secret_problem() or ""

    async def _ask_secret(self, side: str) -> bool:
        """The masked prompt for ``side``; True when a secret was typed (kept in memory)."""
        assert self.engine is not None
        acct = self.engine.config.account(side)
        secret = await self.push_screen_wait(SecretPrompt(
            side, acct.username, acct.imap.host, problem=self.secret_problem(side)))
        if not secret:
            return False
        self.engine.set_secret(side, secret)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "password":
            return any(self.status.connections.get(side) in PASSWORD_STATES
                       for side in ("old", "new")) if self.engine is not None else False
        return True

    def action_password(self, side: str = "") -> None:
        """Type a password again (after a refused login, or one skipped at start), then
        connect again with it at once."""
        if self.engine is None:
            return
        if not side:
            troubled = [s for s in ("old", "new") if self.status.connections.get(s) in PASSWORD_STATES]
            side = troubled[0] if troubled else "old"
        self.run_worker(partial(self._reenter_password, side), group="password", exclusive=True)

    def action_signin(self, side: str) -> None:
        """Sign an oauth2 account in again (the dialog of tui/signin.py), then reconnect."""
        if self.engine is not None:
            self.run_worker(partial(self._reenter_password, side), group="password", exclusive=True)

    async def _reenter_password(self, side: str) -> None:
        assert self.engine is not None
        if self._signs_in(side):
            if not await self.push_screen_wait(SignInScreen(self.engine.config.account(side))):
                return
        elif not await self._ask_secret(side):
            return
        self._told_auth.discard(side)
        if self.status.connections.get(side) not in ("connected", "idle"):
            # a working connection stays as it is (signing in again while connected keeps
            # it; the next reconnect uses the new secret); a refused one tries again now
            self.status.set_connection(side, "connecting")
        self.status.set_note("")
        self.refresh_bindings()
        assert self.engine is not None
        if not any(self.engine.needs_secret(s) for s in ("old", "new")):
            if self._background:
                self.engine.monitor.reconnect_now()
                self.serial.run("proofs", self._prove_logins)
            else:
                self._start_background()

    def _connection(self, event: ConnectionState) -> None:
        before = self.status.connections.get(event.side)
        self.status.set_connection(event.side, event.state)
        if (before in PASSWORD_STATES) != (event.state in PASSWORD_STATES):
            self.refresh_bindings()  # P appears / goes
        if event.state == "auth failed" and event.side not in self._told_auth:
            self._told_auth.add(event.side)  # once per refusal, not on every retry
            why = f" ({event.detail})" if event.detail else ""
            again = "signs in again" if self._signs_in(event.side) else "types the password again"
            self.notify(f"The {event.side} mailbox refused the login{why}. P {again}.",
                        title="Login", severity="error", timeout=20)
        elif event.state in ("connected", "idle"):
            self._told_auth.discard(event.side)
