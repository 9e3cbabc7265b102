"""An embedder's code reading status() and progress() by their keys: mypy --strict passes it."""

from importstate import ImportService


def summary(service: ImportService) -> str:
    status = service.status()
    operation = status.get("operation")
    if operation is None:
        return status["state"]
    count = operation.get("count", {})
    progress = service.progress()
    done = progress["count"]["completed"] + progress["count"]["error"]
    return (f"{status['state']} {operation['_id']} {operation['status']}:"
            f" {done}/{count.get('total', 0)} ({progress['name']})")


