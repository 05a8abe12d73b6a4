"""The dashboard's "Sign in" (an ``auth: oauth2`` account whose sign-in is missing or was
refused): a dialog showing Microsoft's device-code address and code, or Google's address
with a box for the address the browser ended on (over SSH the loopback page does not
load), waiting for the provider in a worker thread, then logging in to the mailbox once
to prove it. The flow itself is core/auth/'s; tokens go to the OS keyring, never here.

Dismissed with True once the login works; escape cancels the flow (False). Google's
address is long and wraps in the dialog: ctrl+y puts it on the clipboard (OSC 52: most
terminals, tmux with set-clipboard, also over SSH).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from switchover.core.auth.login import prove_login
from switchover.core.auth.oauth2 import SignIn, SignInCancelled, begin_sign_in
from switchover.core.errors import SwitchoverError, sentence

if TYPE_CHECKING:
    from switchover.core.config import Account

PROVIDER_NAMES = {"microsoft": "Microsoft 365", "google": "Google Workspace"}


class SignInScreen(ModalScreen[bool]):
    """Sign ``account`` in; see the module docstring."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="signin.cancel"),
                # priority: the paste box has the focus and would take a plain letter
                Binding("ctrl+y", "copy", "Copy the address", id="signin.copy", priority=True)]

    def __init__(self, account: "Account") -> None:
        super().__init__()
        self.account = account
        self.flow: SignIn | None = None
        self._done = False

    def compose(self) -> ComposeResult:
        acct = self.account
        provider = PROVIDER_NAMES.get(acct.oauth2.provider if acct.oauth2 else "", "OAuth2")
        with Vertical(classes="dialog"):
            yield Label(f"Sign in to the {acct.side} mailbox ({provider})", classes="dialog-title")
            yield Static(f"{acct.username}: asking {provider} for a sign-in address …",
                         id="signin-steps", classes="dialog-hint", markup=False)
            yield Static("", id="signin-code", classes="dialog-title", markup=False)
            yield Input(placeholder="paste the address the browser ended on (http://127.0.0.1:…)",
                        id="signin-paste")
            yield Static("", id="signin-state", classes="dialog-hint", markup=False)
            yield Static("ctrl+y copy the address · escape cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#signin-paste", Input).display = False
        self._run()

    def _say(self, widget: str, text: str) -> None:
        self.query_one(f"#{widget}", Static).update(text)

    @work(group="signin", exclusive=True)
    async def _run(self) -> None:
        try:
            self.flow = flow = await asyncio.to_thread(begin_sign_in, self.account)
            self._say("signin-steps", flow.instructions())
            if flow.code:
                self._say("signin-code", f"Code: {flow.code}")
            else:
                self.query_one("#signin-code", Static).display = False
            if flow.accepts_paste:
                paste = self.query_one("#signin-paste", Input)
                paste.display = True
                paste.focus()
            self._say("signin-state", "Waiting for the sign-in …")
            await asyncio.to_thread(flow.wait)
            self._say("signin-state", "Signed in; logging in to the mailbox …")
            await asyncio.to_thread(prove_login, self.account)
        except SignInCancelled:
            return
        except asyncio.CancelledError:      # the dialog went away: end the provider's wait too
            if self.flow is not None:
                self.flow.cancel()
            raise
        except SwitchoverError as e:
            self._say("signin-state", f"{e.message} (escape closes)")
            return
        except Exception as e:  # noqa: BLE001 - a sentence, not a traceback, in the dialog
            self._say("signin-state", f"The sign-in failed: {sentence(e)} (escape closes)")
            return
        self._done = True
        self.dismiss(True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.flow is None:
            return
        try:
            self.flow.paste(event.value)
        except SwitchoverError as e:
            self._say("signin-state", e.message)
            return
        self._say("signin-state", "Exchanging the code …")

    def action_copy(self) -> None:
        if self.flow is not None:
            self.app.copy_to_clipboard(self.flow.url)
            self._say("signin-state", "The address is on the clipboard (where the terminal allows "
                                      "it); waiting for the sign-in …")

    def action_cancel(self) -> None:
        if self.flow is not None:
            self.flow.cancel()
        if not self._done:
            self.dismiss(False)
