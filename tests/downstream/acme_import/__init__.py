"""An example importer service built on importstate, as a downstream project writes one.

It keeps import state in its own document database (``DocumentStore``) and
imports users into its own account directory (``Directory``).
"""

from acme_import.directory import Directory, UsernameTaken
from acme_import.store import Database, DocumentStore
from importstate import ImportService

__all__ = ["Database", "Directory", "DocumentStore", "UsernameTaken", "make_service"]


def make_service(database, directory):
    """The service the application runs: its own store, its own importer as ``api``."""
    return ImportService(DocumentStore(database), {"api": directory.import_user},
                         names={"api": "Acme directory"})
