import asyncio, random, time
from feeds.poller import Poller
from feeds.schedule import Schedule
from tests.test_network_faults import KEYS, feed
from tests.test_feed_health import ATOM
from tests.conftest import make_config

def test_dbg(client, redis_url, feed_server):
    feed_server.set("/other.xml", ATOM, "application/atom+xml")
    config = make_config(redis_url, [feed("other", feed_server.url("/other.xml"), interval=0.05)])
    poller = Poller(config, client, parse_workers=0, rng=random.Random(1))
    async def go():
        r1 = await poller.poll_once()
        print("after1", time.time(), Schedule(client, KEYS).due_times(), r1)
        await asyncio.sleep(0.3)
        r2 = await poller.poll_once()
        print("after2", time.time(), Schedule(client, KEYS).due_times(), r2, feed_server.requests)
    asyncio.run(go())
    assert 0
