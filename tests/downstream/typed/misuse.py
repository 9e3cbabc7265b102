"""The same code with misspelt keys: mypy --strict must refuse each (the test counts them)."""

from importstate import ImportService


def summary(service: ImportService) -> str:
    status = service.status()
    state = status["stat"]  # misspelt: "state"
    progress = service.progress()
    done = progress["count"]["complete"]  # misspelt: "completed"
    operation = status["operation"]
    return f"{state} {done} {operation['updatedAt']}"  # misspelt: "_updatedAt"
