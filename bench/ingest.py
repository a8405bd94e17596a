"""Click ingest throughput: N clicks preloaded into the streams, stored by one ingest process.

    .venv/bin/python -m bench.ingest --clicks 100000

Starts embedded PostgreSQL and Redis in a temporary directory, loads the click streams with
batches shaped like the edge's (1,024 events per entry, realistic user agents), runs the
real `Ingest` consumer until every click is stored, and reports clicks/s (budget: 20,000/s
in ../shared/design.md). Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

BUDGET = 20_000
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


async def run(clicks: int, batch: int) -> dict[str, float]:
    from redis.asyncio import Redis

    from control.db import create_engine
    from control.ingest.consumer import Ingest
    from control.migrate import upgrade
    from control.settings import ControlSettings
    from ricochet.embedded import EmbeddedPostgres, EmbeddedRedis
    from shared.clicks import BATCH_FIELD, ClickEvent, encode_batch
    from shared.ids import uuid7
    from shared.keys import click_stream

    home = Path(tempfile.mkdtemp(prefix="ricochet-bench-ingest-"))
    pg, store = EmbeddedPostgres(home), EmbeddedRedis(home, durable=False)
    try:
        db_url, redis_url = pg.start(), store.start()
        upgrade(db_url)
        cfg = ControlSettings(database_url=db_url, redis_url=redis_url, secret_key="b" * 40)
        redis = Redis.from_url(redis_url)
        links = [str(uuid.uuid4()) for _ in range(500)]
        workspace, domain = str(uuid.uuid4()), str(uuid.uuid4())
        now = int(time.time() * 1000)
        for start in range(0, clicks, batch):
            events = [
                ClickEvent(
                    uuid7().hex,
                    now,
                    links[i % 500],
                    workspace,
                    domain,
                    "qr" if i % 7 == 0 else "link",
                    AGENTS[i % 4],
                    "https://l.instagram.com/" if i % 3 == 0 else "",
                    "",
                    f"81.2.69.{i % 250}",
                    -1,
                    "news",
                    "email",
                    "spring",
                    False,
                )
                for i in range(start, min(start + batch, clicks))
            ]
            await redis.xadd(
                click_stream((start // batch) % cfg.click_shards),
                {BATCH_FIELD: encode_batch(events)},
            )
        engine = create_engine(cfg.sqlalchemy_url, 2)
        ingest = Ingest(cfg, engine, redis, "bench")
        from control.clicks import enrich

        enrich.visitors()  # loaded before the clock starts, as in a running ingest
        await ingest.ensure_groups()
        started = time.perf_counter()
        while ingest.stored < clicks:
            await ingest.step()
        elapsed = time.perf_counter() - started
        await engine.dispose()
        await redis.aclose()
        return {"clicks": clicks, "seconds": elapsed, "per_second": clicks / elapsed}
    finally:
        pg.stop()
        store.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1024, help="events per stream entry")
    args = parser.parse_args()
    result = asyncio.run(run(args.clicks, args.batch))
    ok = result["per_second"] >= BUDGET
    print(
        f"stored {result['clicks']} clicks in {result['seconds']:.2f} s: "
        f"{result['per_second']:,.0f} clicks/s (budget {BUDGET:,}/s): "
        f"{'ok' if ok else 'BUDGET MISSED'}"
    )
    out = Path("bench/results") / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "budget": BUDGET, "ok": ok}, indent=2) + "\n")
    print(f"written {out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
