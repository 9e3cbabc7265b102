"""A whole import with importstate installed without extras; run by test_lean_install.py.

Prints one JSON document: each import's outcome, what the built-in target
holds, and which of the extras' packages got imported (there should be none).
"""

import json
import sys
from pathlib import Path

import importstate
from importstate import (
    ImportService,
    MemoryStore,
    SQLiteStore,
    Store,
    UsersTableImporter,
    diagrams,
)
from importstate.loaders.samples import write_slack_export
from importstate.testing import RecordingImporter

#: The top-level packages of every extra, and typing_extensions (no longer needed at all).
OPTIONAL_PACKAGES = (
    "anyio", "click", "graphviz", "hypothesis", "psycopg", "psycopg_pool", "pytest", "rich",
    "starlette", "typing_extensions", "uvicorn",
)

USERS = [
    {"username": f"user{n}", "emails": [f"user{n}@example.com"], "importIds": [f"u{n}"],
     "name": f"User {n}", "type": "user"}
    for n in range(3)
]
CHANNELS = [{"importIds": ["c-general"], "name": "general", "users": ["u0", "u1", "u2"]}]
MESSAGES = [
    {"importIds": [f"m{n}"], "rid": "c-general", "u": {"_id": f"u{n % 3}"}, "msg": f"hello {n}",
     "ts": "2026-01-01T00:00:00.000Z"}
    for n in range(5)
]


def whole_import(store: Store, importer: object) -> dict[str, object]:
    svc = ImportService(store, {"api": importer})
    svc.new_operation(user_id="admin")
    svc.add_users(USERS)
    svc.add_channels(CHANNELS)
    svc.add_messages(MESSAGES)
    final = svc.run()
    return {"state": str(final.state), "status": str(final.status), "count": final.count.to_wire()}


def main(work: Path) -> None:
    db = work / "import.db"
    target = UsersTableImporter(db)
    store = SQLiteStore(db)
    done = {"sqlite": whole_import(store, target)}
    done["tables"] = {kind: target.count(kind) for kind in ("user", "channel", "message")}
    store.close()
    target.close()

    recording = RecordingImporter()
    done["memory"] = whole_import(MemoryStore(), recording)
    done["recorded"] = recording.import_ids

    slack = write_slack_export(work / "slack.zip", users=4, channels=2, messages=10)
    files_db = work / "files.db"
    files_target = UsersTableImporter(files_db)
    svc = ImportService(SQLiteStore(files_db), {"slack": files_target})
    svc.load_file(slack.path, "slack")
    final = svc.run()
    done["slack"] = {"state": str(final.state), "completed": final.count.get("completed"),
                     "records": slack.records}

    done["mermaid"] = diagrams.state_diagram().splitlines()[3]
    done["from"] = importstate.__file__
    done["loaded"] = sorted(name for name in OPTIONAL_PACKAGES if name in sys.modules)
    sys.stdout.write(json.dumps(done) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
