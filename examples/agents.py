"""An example agent: run it with `swarmhub worker agents:app --app-dir examples`."""

import asyncio

from pydantic import BaseModel

import swarmhub

app = swarmhub.App("writers")


@app.capability()
def shout(payload: dict) -> dict:
    """A sync capability: runs in the worker's thread pool."""
    return {"text": str(payload.get("text", "")).upper()}


class Summary(BaseModel):
    """The payload `summarize` takes, validated before the function runs."""

    text: str
    words: int = 5


@app.capability(timeout=10, max_attempts=2)
async def summarize(job: Summary) -> dict:
    """An async capability with a typed payload."""
    await asyncio.sleep(0)  # call your model or API here
    return {"summary": " ".join(job.text.split()[: job.words])}
