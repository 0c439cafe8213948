"""A burst of finished requests larger than the usage pipeline's queue (10,000): the metrics
and access-log lines past it are dropped and counted, but every spend record reaches the spend
log (real SQLite): records in = rows out."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from chatgate.config import Config
from chatgate.server.context import RequestContext
from chatgate.server.gateway import Gateway
from chatgate.store.engine import create_engine
from chatgate.store.schema.spend import SPEND_LOG

BURST = 12_500  # past the queue's 10,000


async def test_a_burst_past_the_queue_loses_no_spend_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    config = Config.model_validate(
        {
            "model_list": [
                {"model_name": "m", "params": {"model": "openai/gpt-4o-mini", "api_key": "x"}}
            ],
            "general_settings": {"database_url": url},
        }
    )
    gateway = Gateway(config, zero_config=False)
    await gateway.services.open(config)
    sent = []
    try:
        for _ in range(BURST):  # no await between them: nothing drains meanwhile
            ctx = RequestContext(route="/v1/chat/completions", requested_model="m", status=200)
            sent.append(ctx.request_id)
            gateway.pipeline.submit(ctx)
        assert gateway.pipeline.dropped == BURST - 10_000  # metrics and log lines: counted
        await gateway.pipeline.stop()
    finally:
        await gateway.services.close()  # every record written
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = list((await conn.execute(select(SPEND_LOG.c.request_id))).scalars())
    finally:
        await engine.dispose()
    assert len(rows) == BURST
    assert sorted(rows) == sorted(sent)
