"""Acme's account directory: the system users are imported into."""

import threading


class UsernameTaken(Exception):
    """Another account already has this username."""


class Directory:
    """Accounts by first import id; importing the same user twice changes nothing."""

    def __init__(self):
        self.accounts = {}
        self._lock = threading.Lock()

    def import_user(self, user):
        key = user["importIds"][0]
        username = user.get("username")
        with self._lock:
            for other_key, account in self.accounts.items():
                if username and account.get("username") == username and other_key != key:
                    raise UsernameTaken(f"username {username!r} is taken")
            self.accounts[key] = {"username": username, "emails": user["emails"]}
