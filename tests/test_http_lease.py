"""Which server runs an import: the lease each server takes on the imports it runs."""

import sqlite3
import subprocess
import sys

from importstate.http._lease import RunLease


def test_a_live_lease_is_refused_to_another_server_and_a_released_one_is_not(tmp_path):
    db = tmp_path / "lease.db"
    first, second = (RunLease(db, takeover_after=30) for _ in range(2))
    assert first.claim("op", unowned=True) is None
    assert first.claim("op", unowned=False) is None  # its own, again
    assert "another server" in second.claim("op", unowned=True)
    first.release("op")
    assert second.claim("op", unowned=False) is None
    assert "another server" in first.claim("op", unowned=True)
    second.drop("op")
    assert "outside any server" in first.claim("op", unowned=False)
    first.close()
    second.close()


def test_a_lease_that_lapsed_or_whose_process_is_gone_is_taken_over(tmp_path):
    db = tmp_path / "lease.db"
    first, second = RunLease(db, takeover_after=30), RunLease(db, takeover_after=30)
    assert first.claim("old", unowned=True) is None
    assert first.claim("dead", unowned=True) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE serve_leases SET renewed = renewed - 31000 WHERE operation = 'old'")
        conn.execute("UPDATE serve_leases SET pid = ? WHERE operation = 'dead'",
                     (int(dead.stdout),))
    assert second.claim("old", unowned=False) is None
    assert second.claim("dead", unowned=False) is None
    first.renew()  # a renewal by the old holder changes nothing now
    assert "another server" in first.claim("old", unowned=True)
    first.close()
    second.close()
